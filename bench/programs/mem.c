/* Workload 6: 64 MiB (argv[1] MiB) of non-trivial bytes mapped at a fixed
 * address, so that gdb and lldb can dump it without evaluating expressions. */
#include <stdint.h>
#include <stdlib.h>
#include <sys/mman.h>

#define BASE ((void *)0x100000000000UL)

__attribute__((noinline)) void ready(void)
{
    __asm__ volatile("" ::: "memory");
}

int main(int argc, char **argv)
{
    size_t mib = argc > 1 ? strtoul(argv[1], 0, 10) : 64;
    size_t size = mib << 20;
    uint64_t *p = mmap(BASE, size, PROT_READ | PROT_WRITE,
                       MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
    if (p != BASE)
        return 2;
    uint64_t x = 0x9e3779b97f4a7c15ULL;
    for (size_t i = 0; i < size / 8; i++) {
        x = x * 6364136223846793005ULL + 1442695040888963407ULL;
        p[i] = x;
    }
    ready();
    return 0;
}
