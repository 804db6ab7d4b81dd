/* Runs until killed: a target for attach, interrupt and detach. */
#include <stdio.h>
#include <unistd.h>

volatile unsigned long ticks = 0;

void tick(void) { ticks++; }

int main(void) {
  printf("spin pid %d\n", getpid());
  fflush(stdout);
  for (;;) {
    tick();
    usleep(1000);
  }
}
