/* A handled SIGUSR1, then (with argument "segv") a SIGSEGV. */
#include <signal.h>
#include <stdio.h>
#include <string.h>

volatile int handled = 0;

void on_usr1(int sig) { handled = sig; }

int main(int argc, char **argv) {
  signal(SIGUSR1, on_usr1);
  raise(SIGUSR1);
  printf("handled=%d\n", handled);
  if (argc > 1 && strcmp(argv[1], "segv") == 0) {
    volatile int *p = 0;
    *p = 1;
  }
  return handled == SIGUSR1 ? 0 : 1;
}
