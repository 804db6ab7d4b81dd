/* Threads that start and end all the time (as GDB's manythreads.c): an
   interrupt then often finds the thread it stops in a clone event, or
   already gone. Runs until killed. */
#include <pthread.h>
#include <stdio.h>

static void *brief(void *arg) { return arg; }

int main(void) {
  printf("clone_storm running\n");
  fflush(stdout);
  for (;;) {
    pthread_t t[8];
    for (int i = 0; i < 8; i++) pthread_create(&t[i], NULL, brief, NULL);
    for (int i = 0; i < 8; i++) pthread_join(t[i], NULL);
  }
}
