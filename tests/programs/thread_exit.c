/* A thread that ends while main waits for it: resumed alone (gdb's
 * scheduler-locking), nothing is left running once it is gone. */
#include <pthread.h>
#include <stdio.h>

void worker_break(void) {}

static void *worker(void *arg) {
  (void)arg;
  worker_break();
  return NULL;
}

int main(void) {
  pthread_t t;
  pthread_create(&t, NULL, worker, NULL);
  pthread_join(t, NULL);
  printf("thread_exit done\n");
  return 0;
}
