/* Workload 8: argv[1] threads (default 64) parked a few frames deep in a
 * blocking system call; then the main thread calls all_ready() argv[2]
 * times, where the benchmark stops and lists/backtraces every thread. */
#include <pthread.h>
#include <stdlib.h>
#include <unistd.h>

static pthread_barrier_t barrier;
static int parked;

__attribute__((noinline)) static void park(void)
{
    __atomic_add_fetch(&parked, 1, __ATOMIC_SEQ_CST);
    for (;;)
        pause();
}

__attribute__((noinline)) static void level2(void) { park(); }
__attribute__((noinline)) static void level1(void) { level2(); }

static void *worker(void *arg)
{
    (void)arg;
    pthread_barrier_wait(&barrier);
    level1();
    return 0;
}

__attribute__((noinline)) void all_ready(int round)
{
    __asm__ volatile("" ::"r"(round) : "memory");
}

int main(int argc, char **argv)
{
    int n = argc > 1 ? atoi(argv[1]) : 64;
    int rounds = argc > 2 ? atoi(argv[2]) : 1;
    pthread_barrier_init(&barrier, 0, n + 1);
    for (int i = 0; i < n; i++) {
        pthread_t t;
        pthread_create(&t, 0, worker, 0);
    }
    pthread_barrier_wait(&barrier);
    while (__atomic_load_n(&parked, __ATOMIC_SEQ_CST) < n)
        usleep(1000);
    usleep(1000); /* let the last ones get from the count into pause() */
    for (int r = 0; r < rounds; r++)
        all_ready(r);
    return 0;
}
