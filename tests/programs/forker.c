/* A parent that forks a child and reports how the child ended, as seen by
 * its own waitpid. With argument "segv" the child faults; with "exec" it
 * execs `basic`; with "vfork" it uses vfork+exec. */
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

volatile int child_steps = 0;

void child_work(void) {
  for (int i = 0; i < 200; i++) {
    child_steps++;
    usleep(10000);
  }
}

void child_fault(void) {
  volatile int *p = 0;
  *p = 42;
}

void parent_done(int status) { (void)status; }

void parent_forked(pid_t child) { (void)child; }

int main(int argc, char **argv) {
  const char *mode = argc > 1 ? argv[1] : "";
  pid_t pid;
  if (strcmp(mode, "vfork") == 0) {
    pid = vfork();
    if (pid == 0) {
      execl(argc > 2 ? argv[2] : "/bin/true", "basic", (char *)0);
      _exit(127);
    }
  } else {
    pid = fork();
    if (pid == 0) {
      if (strcmp(mode, "segv") == 0) child_fault();
      if (strcmp(mode, "exec") == 0) execl(argc > 2 ? argv[2] : "/bin/true", "basic", (char *)0);
      child_work();
      _exit(3);
    }
  }
  parent_forked(pid);
  int status = 0;
  waitpid(pid, &status, 0);
  if (WIFEXITED(status)) printf("parent: child exited %d\n", WEXITSTATUS(status));
  if (WIFSIGNALED(status)) printf("parent: child killed by signal %d\n", WTERMSIG(status));
  fflush(stdout);
  parent_done(status);
  return 0;
}
