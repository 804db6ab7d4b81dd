/* A thread that ends on its own a moment after it starts, while another
 * one keeps running: non-stop mode's test asks the first to stop once it
 * is gone, as gdb does when a thread exits during its stop of every
 * thread. The threads are named for the test to tell them apart. */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdio.h>
#include <unistd.h>

static void *short_lived(void *arg) {
  (void)arg;
  pthread_setname_np(pthread_self(), "short_lived");
  usleep(700000);  /* long enough for the test to stop main first */
  return NULL;
}

static void *lasting(void *arg) {
  (void)arg;
  pthread_setname_np(pthread_self(), "lasting");
  for (;;) usleep(1000);
  return NULL;
}

int main(void) {
  pthread_t a, b;
  pthread_create(&a, NULL, lasting, NULL);
  pthread_create(&b, NULL, short_lived, NULL);
  pthread_join(b, NULL);
  sleep(60);  /* the test kills the program long before */
  printf("short_lived_thread done\n");
  return 0;
}
