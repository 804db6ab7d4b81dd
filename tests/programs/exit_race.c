/* 256 threads meet main at a barrier, then every thread calls hit() and
 * _exit(0) (exit_group), as gdb.threads/process-dies-while-detaching's:
 * resumed from hit() one after another, the first to run ends them all
 * while the others are still being resumed. */
#include <pthread.h>
#include <unistd.h>

#define N 256
static pthread_barrier_t barrier;
int globalvar = 1;

void hit(void) {}

static void* worker(void* arg) {
  pthread_barrier_wait(&barrier);
  hit();
  _exit(0);
  return arg;
}

int main(void) {
  pthread_t t[N];
  pthread_barrier_init(&barrier, NULL, N + 1);
  for (int i = 0; i < N; ++i) pthread_create(&t[i], NULL, worker, NULL);
  pthread_barrier_wait(&barrier);
  hit();
  _exit(0);
}
