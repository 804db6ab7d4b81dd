/* Breakpoints, stepping, arguments, locals, memory and a watchpoint. */
#include <stdio.h>
#include <stdlib.h>

volatile long watched = 0;
char buffer[64] = "hello from basic";

int add(int a, int b) {
  int sum = a + b;
  return sum;
}

long compute(int n) {
  long acc = 0;
  for (int i = 0; i < n; i++) {
    acc += add(i, n);
  }
  watched = acc;
  return acc;
}

int main(int argc, char **argv) {
  int code = argc > 1 ? atoi(argv[1]) : 0;
  long r = compute(5);
  printf("compute=%ld buffer=%s\n", r, buffer);
  return code + (int)(watched - r); /* reads watched: 0 */
}
