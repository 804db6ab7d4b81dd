#include <doctest/doctest.h>

#include "server/app/options.h"

using namespace dbgstub;

TEST_CASE("options: program mode defaults to loopback") {
  auto o = parse_options({":1234", "/bin/true", "-x"});
  REQUIRE(o.ok());
  CHECK(o->host == "127.0.0.1");
  CHECK(o->port == 1234);
  CHECK(o->program == std::vector<std::string>{"/bin/true", "-x"});
  CHECK_FALSE(o->allow_run);
  CHECK_FALSE(o->allow_attach);
}

TEST_CASE("options: gdbserver-compatible forms") {
  auto a = parse_options({"--attach", "localhost:2000", "42"});
  REQUIRE(a.ok());
  CHECK(a->attach_pid == 42);
  CHECK(a->host == "127.0.0.1");
  auto m = parse_options({"--once", "--multi", "0.0.0.0:0"});
  REQUIRE(m.ok());
  CHECK(m->multi);
  CHECK(m->once);
  CHECK(m->host == "0.0.0.0");
  // Options after COMM belong to the program.
  auto p = parse_options({":1", "prog", "--multi"});
  REQUIRE(p.ok());
  CHECK_FALSE(p->multi);
  CHECK(p->program.back() == "--multi");
}

TEST_CASE("options: errors name the problem") {
  CHECK_FALSE(parse_options({}).ok());
  CHECK_FALSE(parse_options({"1234"}).ok());
  CHECK_FALSE(parse_options({":99999", "p"}).ok());
  CHECK_FALSE(parse_options({":1"}).ok());
  CHECK_FALSE(parse_options({"--attach", ":1", "x"}).ok());
  CHECK_FALSE(parse_options({"--attach", ":1", "0"}).ok());
  CHECK_FALSE(parse_options({"--attach", ":1", "-3"}).ok());
  CHECK_FALSE(parse_options({"--attach", ":1", "12x"}).ok());
  CHECK_FALSE(parse_options({":-1", "p"}).ok());
  CHECK_FALSE(parse_options({"--handshake-timeout=-1", ":1", "p"}).ok());
  CHECK_FALSE(parse_options({"--bogus", ":1", "p"}).ok());
  auto e = parse_options({"--log-level"});
  REQUIRE_FALSE(e.ok());
  CHECK(e.error().message.find("--log-level") != std::string::npos);
}

TEST_CASE("options: --log-file, and gdbserver's --debug-file") {
  auto o = parse_options({"--log-file=/tmp/x.log", ":1", "p"});
  REQUIRE(o.ok());
  CHECK(o->log_file == "/tmp/x.log");
  o = parse_options({"--debug-file=/tmp/y.log", ":1", "p"});
  REQUIRE(o.ok());
  CHECK(o->log_file == "/tmp/y.log");
  CHECK(parse_options({":1", "p"})->log_file.empty());
  auto e = parse_options({"--log-file=", ":1", "p"});
  REQUIRE_FALSE(e.ok());
  CHECK(e.error().message == "--log-file needs a file");
}

TEST_CASE("options: --vm") {
  auto o = parse_options({"--vm", "gdbstub=127.0.0.1:1234,qga=/tmp/qga.sock,qmp=/tmp/qmp.sock", ":2000"});
  REQUIRE(o.ok());
  REQUIRE(o->vm);
  CHECK(o->vm->gdbstub_host == "127.0.0.1");
  CHECK(o->vm->gdbstub_port == 1234);
  CHECK(o->vm->qga == "/tmp/qga.sock");
  CHECK(o->vm->qmp == "/tmp/qmp.sock");
  CHECK(o->port == 2000);
  CHECK(o->program.empty());

  auto eq = parse_options({"--vm=gdbstub=localhost:1", "127.0.0.1:0"});
  REQUIRE(eq.ok());
  CHECK(eq->vm->gdbstub_host == "127.0.0.1");
  CHECK(eq->vm->qga.empty());
  auto v6 = parse_vm_spec("gdbstub=[::1]:5");
  REQUIRE(v6.ok());
  CHECK(v6->gdbstub_host == "::1");
  auto nohost = parse_vm_spec("qmp=/q,gdbstub=:7");
  REQUIRE(nohost.ok());
  CHECK(nohost->gdbstub_host == "127.0.0.1");
  CHECK(nohost->gdbstub_port == 7);
}

TEST_CASE("options: --vm libvirt=DOMAIN") {
  auto o = parse_options({"--vm", "libvirt=web1", ":2000"});
  REQUIRE(o.ok());
  REQUIRE(o->vm);
  CHECK(o->vm->libvirt_domain == "web1");
  CHECK(o->vm->libvirt_uri == "qemu:///system");
  CHECK(o->vm->gdbstub_host == "127.0.0.1");
  CHECK(o->port == 2000);
  auto uri = parse_vm_spec("uri=qemu:///session,libvirt=d");
  REQUIRE(uri.ok());
  CHECK(uri->libvirt_uri == "qemu:///session");
  CHECK(uri->libvirt_domain == "d");
  CHECK(parse_vm_spec("libvirt=d,gdbstub=:1").error().message.find("libvirt=DOMAIN goes alone") != std::string::npos);
  CHECK(parse_vm_spec("libvirt=d,qga=/x").error().message.find("libvirt=DOMAIN goes alone") != std::string::npos);
  CHECK(parse_vm_spec("gdbstub=:1,uri=qemu:///system").error().message == "--vm: uri= goes with libvirt=DOMAIN");
  CHECK(parse_vm_spec("libvirt=").error().message == "--vm: field 'libvirt' has an empty value");
}

TEST_CASE("options: --vm errors name the field") {
  auto error_of = [](std::vector<std::string> args) {
    auto o = parse_options(args);
    REQUIRE_FALSE(o.ok());
    return o.error().message;
  };
  CHECK(error_of({"--vm"}).find("gdbstub=") != std::string::npos);
  CHECK(error_of({"--vm", "", ":1"}).find("gdbstub=") != std::string::npos);
  CHECK(error_of({"--vm", "qmp=/q", ":1"}).find("missing field gdbstub") != std::string::npos);
  CHECK(error_of({"--vm", "gdbstub", ":1"}).find("'gdbstub'") != std::string::npos);
  CHECK(error_of({"--vm", "gdbstub=", ":1"}).find("'gdbstub' has an empty value") != std::string::npos);
  CHECK(error_of({"--vm", "gdbstub=1234", ":1"}).find("gdbstub=: needs HOST:PORT") != std::string::npos);
  CHECK(error_of({"--vm", "gdbstub=h:x", ":1"}).find("gdbstub=: bad port 'x'") != std::string::npos);
  CHECK(error_of({"--vm", "gdbstub=h:0", ":1"}).find("bad port") != std::string::npos);
  CHECK(error_of({"--vm", "gdbstub=h:70000", ":1"}).find("bad port") != std::string::npos);
  CHECK(error_of({"--vm", "gdbstub=h:1,qga=", ":1"}).find("'qga' has an empty value") != std::string::npos);
  CHECK(error_of({"--vm", "gdbstub=h:1,qmp", ":1"}).find("'qmp'") != std::string::npos);
  CHECK(error_of({"--vm", "gdbstub=h:1,gdbstub=h:2", ":1"}).find("'gdbstub' given twice") != std::string::npos);
  CHECK(error_of({"--vm", "gdbstub=h:1,kgdb=/dev/x", ":1"}).find("unknown field 'kgdb'") != std::string::npos);
  CHECK(error_of({"--vm", "gdbstub=h:1"}).find("[HOST]:PORT") != std::string::npos);
  CHECK(error_of({"--vm", "gdbstub=h:1", ":1", "prog"}).find("--vm takes no program") != std::string::npos);
  CHECK(error_of({"--vm", "gdbstub=h:1", ":1", "--attach", "5"}).find("--vm takes no PID") != std::string::npos);
  CHECK(error_of({"--vm", "gdbstub=h:1", "--local-kernel", ":1"}).find("--vm") != std::string::npos);
}

TEST_CASE("options: --kd serves kernel targets only, on loopback by default") {
  auto a = parse_options({"--kd", ":5000", "--local-kernel"});
  REQUIRE(a.ok());
  CHECK(a->kd);
  CHECK(a->local_kernel);
  CHECK(a->host == "127.0.0.1");
  CHECK(a->port == 5000);
  auto b = parse_options({"--kd=0.0.0.0:5001", "--vm", "gdbstub=127.0.0.1:1234"});
  REQUIRE(b.ok());
  CHECK(b->kd);
  CHECK(b->vm.has_value());
  CHECK(b->host == "0.0.0.0");
  // COMM after the target options, as for the GDB front end.
  auto c = parse_options({"--kd", "--local-kernel", "127.0.0.1:5002"});
  REQUIRE(c.ok());
  CHECK(c->port == 5002);
  // A user-mode process is out of scope for KD: a clear error.
  auto d = parse_options({"--kd", ":5003", "/bin/true"});
  REQUIRE_FALSE(d.ok());
  CHECK(d.error().message.find("not supported over KD") != std::string::npos);
  auto e = parse_options({"--kd", ":5004"});
  REQUIRE_FALSE(e.ok());
  CHECK(e.error().message.find("--local-kernel or --vm") != std::string::npos);
  CHECK_FALSE(parse_options({"--kd", ":5005", "--attach", "42"}).ok());
  CHECK_FALSE(parse_options({"--kd", "-", "--local-kernel"}).ok());
  CHECK_FALSE(parse_options({"--kd", ":5006", "--local-kernel", "--vm", "gdbstub=127.0.0.1:1"}).ok());
}

TEST_CASE("options: --spin") {
  auto d = parse_options({":1", "prog"});
  REQUIRE(d.ok());
  CHECK(d->spin_us == 0);
  auto z = parse_options({"--spin=150", ":1", "prog"});
  REQUIRE(z.ok());
  CHECK(z->spin_us == 150);
  CHECK_FALSE(parse_options({"--spin=-1", ":1", "prog"}).ok());
  CHECK_FALSE(parse_options({"--spin=1s", ":1", "prog"}).ok());
  CHECK_FALSE(parse_options({"--spin=100001", ":1", "prog"}).ok());
}

TEST_CASE("options: the command line's program is made absolute at startup") {
  // Relative names are taken from the working directory dbgstub started in.
  CHECK(absolute_program("/bin/true", "/tmp", "") == "/bin/true");
  CHECK(absolute_program("./prog", "/home/me", "") == "/home/me/prog");
  CHECK(absolute_program("sub/prog", "/home/me/", "") == "/home/me/sub/prog");
  CHECK(absolute_program("../prog", "/home/me", "") == "/home/me/../prog");
  // A bare name: the working directory's file if there is one, else PATH's.
  CHECK(absolute_program("true", "/nonexistent", "/nowhere::/bin") == "/bin/true");
  CHECK(absolute_program("true", "/bin", "/usr/bin") == "/bin/true");
  CHECK(absolute_program("no-such-program-here", "/tmp", "/bin") == "/tmp/no-such-program-here");
  // Only a program counts, not a directory or another file of that name.
  CHECK(absolute_program("passwd", "/etc", "/usr/bin") == "/usr/bin/passwd");  // /etc/passwd is no program
}

TEST_CASE("options: --state-dir DIR and --state-dir=DIR") {
  auto o = parse_options({"--state-dir", "/tmp/s1", "--vm", "gdbstub=127.0.0.1:1234", ":1"});
  REQUIRE(o.ok());
  CHECK(o->state_dir == "/tmp/s1");
  o = parse_options({"--state-dir=/tmp/s2", "--vm", "gdbstub=127.0.0.1:1234", ":1"});
  REQUIRE(o.ok());
  CHECK(o->state_dir == "/tmp/s2");
  CHECK(parse_options({"--vm", "gdbstub=127.0.0.1:1234", ":1"})->state_dir.empty());
  auto e = parse_options({"--state-dir"});
  REQUIRE_FALSE(e.ok());
  CHECK(e.error().message == "--state-dir needs a folder");
  CHECK_FALSE(parse_options({"--state-dir=", ":1", "p"}).ok());
}
