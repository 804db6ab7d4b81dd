/* Range stepping: the whole loop is on the line marked LOOP_LINE, so one
   `next` over it single-steps argv[1] iterations (default 3000) inside that
   line's address range; gdb sends one vCont;r for all of them. */
#include <stdio.h>
#include <stdlib.h>

int main(int argc, char **argv) {
  long n = argc > 1 ? atol(argv[1]) : 3000;
  volatile long s = 0;
  for (long i = 0; i < n; i++) s += i; /* LOOP_LINE */
  printf("rangeloop done s=%ld\n", (long)s); /* AFTER_LINE */
  return 0;
}
