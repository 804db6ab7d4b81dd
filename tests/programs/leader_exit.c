/* The main thread ends (pthread_exit) while a worker lives on: resumed
 * alone (gdb's scheduler-locking), main becomes a zombie that never
 * stops, and no resumed thread is left. */
#include <pthread.h>
#include <stdio.h>
#include <unistd.h>

volatile int go = 0;

void main_break(void) {}

static void *worker(void *arg) {
  (void)arg;
  while (!go) usleep(1000);
  printf("leader_exit worker done\n");
  fflush(stdout);
  return NULL;
}

int main(void) {
  pthread_t t;
  pthread_create(&t, NULL, worker, NULL);
  main_break();
  pthread_exit(NULL);
}
