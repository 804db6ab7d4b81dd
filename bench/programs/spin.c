/* Workloads 4 and 5. stepi: the benchmark stops at the top of the loop and
 * single-steps through it. next: the whole loop is on the line marked
 * RANGE_LINE, so one `next` over it keeps stepping inside that line's
 * address range for argv[1] iterations (range stepping territory). */
#include <stdlib.h>

int main(int argc, char **argv)
{
    long n = argc > 1 ? atol(argv[1]) : 5000;
    volatile long s = 0;
    for (long i = 0; i < n; i++) s += i; /* RANGE_LINE */
    return (int)(s & 1); /* AFTER_LINE */
}
