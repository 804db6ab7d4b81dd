/* Two workers that count for as long as main lets them: a thread stopped
   at a breakpoint while the others keep counting shows non-stop mode. */
#include <pthread.h>
#include <stdio.h>
#include <unistd.h>

volatile long counters[2];
volatile int done;

static void *spin(void *arg) {
  long id = (long)arg;
  while (!done) counters[id]++;
  return NULL;
}

void main_paused(void) {}

int main(void) {
  pthread_t t[2];
  for (long i = 0; i < 2; i++) pthread_create(&t[i], NULL, spin, (void *)i);
  while (counters[0] == 0 || counters[1] == 0) usleep(1000);
  main_paused();
  usleep(200000);
  done = 1;
  for (int i = 0; i < 2; i++) pthread_join(t[i], NULL);
  printf("spinners done\n");
  return 0;
}
