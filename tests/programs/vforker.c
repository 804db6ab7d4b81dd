/* The parent spends nearly all its time waiting for a vfork child (a wait
 * no signal interrupts): a signal sent to it meanwhile stays pending. */
#include <signal.h>
#include <stdio.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

volatile int usr1_seen = 0;

void on_usr1(int sig) { usr1_seen = sig; }

int main(void) {
  signal(SIGUSR1, on_usr1);
  printf("vforker pid %d\n", getpid());
  fflush(stdout);
  for (;;) {
    pid_t c = vfork();
    if (c == 0) {
      struct timespec ts = {2, 0};
      nanosleep(&ts, NULL);
      _exit(0);
    }
    waitpid(c, NULL, 0);
  }
}
