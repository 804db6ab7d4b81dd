/* Target-side breakpoint conditions beside a thread the debugger steps:
   main and a second thread call g() as fast as they can (a breakpoint
   there whose condition is false is stepped over inside the stub, again
   and again) while a third thread, the first one created, spins in a loop
   that a test single-steps. */
#include <pthread.h>
#include <stdio.h>

volatile int done;
volatile long hits;
volatile long spin;

int g(int x) {
  hits += x; /* g body */
  return x;
}

static void *hammer(void *arg) {
  (void)arg;
  while (!done) g(1);
  return NULL;
}

static void *spinner(void *arg) {
  (void)arg;
  while (!done) spin++; /* spinner loop */
  return NULL;
}

int main(void) {
  pthread_t s, h;
  pthread_create(&s, NULL, spinner, NULL);
  pthread_create(&h, NULL, hammer, NULL);
  hammer(NULL);
  pthread_join(s, NULL);
  pthread_join(h, NULL);
  printf("stepover_race done\n");
  return 0;
}
