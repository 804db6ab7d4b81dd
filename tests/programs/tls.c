/* Thread-local variables with a different value in each of two threads
   (gdb reads them through qGetTLSAddr). */
#include <pthread.h>
#include <stdio.h>

__thread int tls_counter = 1;
static __thread long tls_big[4] = {5, 6, 7, 8};
static pthread_barrier_t ready;

void checkpoint(void) {}

static void *worker(void *arg) {
  (void)arg;
  tls_counter = 200;
  tls_big[3] = 208;
  checkpoint();
  pthread_barrier_wait(&ready);
  return NULL;
}

int main(void) {
  pthread_t t;
  tls_counter = 100;
  tls_big[3] = 108;
  pthread_barrier_init(&ready, NULL, 2);
  pthread_create(&t, NULL, worker, NULL);
  pthread_barrier_wait(&ready);
  pthread_join(t, NULL);
  printf("main tls_counter=%d\n", tls_counter);
  return 0;
}
