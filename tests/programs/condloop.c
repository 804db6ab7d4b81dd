/* Target-side breakpoint conditions: f(x) is called for x = 0..N-1 (N from
   argv[1], default 10); a breakpoint on f with a condition on x. */
#include <stdio.h>
#include <stdlib.h>

volatile long total;
const char *label = "item";

int f(int x) {
  total += x; /* f body */
  return x;
}

int main(int argc, char **argv) {
  int n = argc > 1 ? atoi(argv[1]) : 10;
  for (int i = 0; i < n; i++) f(i);
  printf("condloop done total=%ld\n", total);
  fflush(stdout);
  return 0;
}
