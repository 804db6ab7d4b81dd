/* Runs forever in the test guest, entering the kernel through getpid(2)
   about a thousand times a second (bursts of 10, then a 10 ms sleep), so a
   breakpoint on __x64_sys_getpid is hit promptly without keeping the one
   emulated CPU busy. Built on the host with gcc -static by build-guest.sh. */
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

int main(void) {
    const struct timespec pause = {0, 10 * 1000 * 1000};
    for (;;) {
        for (int i = 0; i < 10; i++)
            syscall(SYS_getpid);
        nanosleep(&pause, NULL);
    }
}
