"""The README and docs/: every relative link points to a file of the
repository, and every document in docs/ is linked from the README's table
(a new user finds them all from the front door). No program runs."""
import glob
import os
import re
import unittest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
LINK = re.compile(r"\]\(([^)#\s]+)(?:#[^)]*)?\)")


class Docs(unittest.TestCase):
    def documents(self):
        return [os.path.join(ROOT, "README.md")] + sorted(glob.glob(os.path.join(ROOT, "docs", "*.md")))

    def test_relative_links_resolve(self):
        broken = []
        for doc in self.documents():
            with open(doc) as f:
                for target in LINK.findall(f.read()):
                    if "://" in target:
                        continue
                    if not os.path.exists(os.path.join(os.path.dirname(doc), target)):
                        broken.append(f"{os.path.relpath(doc, ROOT)}: {target}")
        self.assertFalse(broken, broken)

    def test_readme_links_every_document(self):
        with open(os.path.join(ROOT, "README.md")) as f:
            readme = f.read()
        linked = set(LINK.findall(readme))
        docs = {os.path.relpath(p, ROOT) for p in glob.glob(os.path.join(ROOT, "docs", "*.md"))}
        self.assertGreater(len(docs), 5)
        self.assertFalse(docs - linked, f"not in the README's table: {sorted(docs - linked)}")

    def test_readme_is_short(self):
        # The front door: what it is, the two commands, recipes, the table.
        with open(os.path.join(ROOT, "README.md")) as f:
            self.assertLess(len(f.read().splitlines()), 120)


if __name__ == "__main__":
    unittest.main()
