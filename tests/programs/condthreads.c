/* Target-side conditions with threads: 4 threads each call g(t, i) for
   i = 0..N-1 (N from argv[1], default 200) and the totals are checked, so
   a breakpoint stepped over wrongly (skipped or run twice) shows. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

#define NTHREADS 4
static int n = 200;
static volatile long sums[NTHREADS];

int g(int t, int i) {
  sums[t] += i; /* g body */
  return i;
}

static void *worker(void *arg) {
  int t = (int)(long)arg;
  for (int i = 0; i < n; i++) g(t, i);
  return NULL;
}

int main(int argc, char **argv) {
  if (argc > 1) n = atoi(argv[1]);
  pthread_t th[NTHREADS];
  for (long t = 0; t < NTHREADS; t++) pthread_create(&th[t], NULL, worker, (void *)t);
  volatile long spin = 0;
  for (int k = 0; k < 1000; k++) {
    spin += k; /* main loop */
  }
  for (int t = 0; t < NTHREADS; t++) pthread_join(th[t], NULL);
  long want = (long)n * (n - 1) / 2;
  int ok = 1;
  for (int t = 0; t < NTHREADS; t++) ok &= sums[t] == want;
  printf("condthreads %s\n", ok ? "sums ok" : "sums WRONG");
  fflush(stdout);
  return ok ? 0 : 1;
}
