/* One thread that does nothing but start short-lived threads and join
 * them, for 30 s: nearly every ptrace stop of it is a clone event. */
#include <pthread.h>
#include <time.h>

static void* quick(void* arg) { return arg; }

int main(void) {
  time_t end = time(NULL) + 30;
  while (time(NULL) < end) {
    pthread_t t;
    if (pthread_create(&t, NULL, quick, NULL) == 0) pthread_join(t, NULL);
  }
  return 0;
}
