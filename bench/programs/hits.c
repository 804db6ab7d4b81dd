/* Workloads 1-3 and 7: hit() is called N times (argv[1], default 20000);
 * the benchmark puts a breakpoint, a never-true condition or a dprintf on it. */
#include <stdlib.h>

volatile long sink;

__attribute__((noinline)) void hit(int i)
{
    sink += i;
}

int main(int argc, char **argv)
{
    int n = argc > 1 ? atoi(argv[1]) : 20000;
    for (int i = 0; i < n; i++)
        hit(i);
    return 0;
}
