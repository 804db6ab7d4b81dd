/* A small program to try dbgstub on: break at `fib`, step, print. */
#include <stdio.h>

static int fib(int n) {
  if (n < 2) return n;
  return fib(n - 1) + fib(n - 2);
}

int main(void) {
  int total = 0;
  for (int i = 0; i < 10; i++) {
    total += fib(i);
    printf("fib(%d) = %d\n", i, fib(i));
  }
  printf("total = %d\n", total);
  return 0;
}
