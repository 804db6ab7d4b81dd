/* Several threads parked in a known function. */
#include <pthread.h>
#include <stdio.h>
#include <unistd.h>

#define N 4
static pthread_barrier_t barrier;
volatile int counters[N];

void worker_wait(int id) {
  pthread_barrier_wait(&barrier);
  for (int i = 0; i < 3; i++) { counters[id]++; usleep(1000); }
}

static void *worker(void *arg) {
  worker_wait((int)(long)arg);
  return NULL;
}

void all_started(void) {}

int main(void) {
  pthread_t t[N];
  pthread_barrier_init(&barrier, NULL, N + 1);
  for (long i = 0; i < N; i++) pthread_create(&t[i], NULL, worker, (void *)i);
  all_started();
  pthread_barrier_wait(&barrier);
  for (int i = 0; i < N; i++) pthread_join(t[i], NULL);
  printf("threads done\n");
  return 0;
}
