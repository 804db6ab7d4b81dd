/* Threads for the tests of signals and steps kept across stops
 * (test_gdb_thread_events.py).
 *  no argument: a worker stops at worker_stop and ends; main then waits up
 *    to 3 s for a SIGUSR1 and prints which thread handled it.
 *  "spin": one worker spins (spin_a++), another calls hit() in a loop, for
 *    20 s; SIGUSR1s are counted in usr1_count.
 *  "leader": main starts a worker and calls pthread_exit; the worker stops
 *    at worker_stop once main is gone, then the process exits 0.
 *  "leader-code": main starts 4 workers and exits with SYS_exit(1); the
 *    workers end with SYS_exit(2..5) once main is a zombie. The process's
 *    exit code is 1, the leader's.
 *  "thread-exit": a worker stops at worker_stop, then calls exit(0) (a
 *    group exit) while main sleeps.
 *  "read": reads a line from stdin and prints it.
 *  "vfork": vforks a child that calls child_before_exec, then execs
 *    /bin/true; the parent prints how the child ended.
 *  "fork": one worker calls hit() in a loop, another forks children that
 *    exit at once, for 20 s. */
#define _GNU_SOURCE
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

volatile int usr1_count = 0;
volatile int usr1_tid = 0;
volatile int main_tid = 0;
volatile long spin_a = 0;
volatile int done_flag = 0;

void on_usr1(int sig) {
  (void)sig;
  usr1_tid = syscall(SYS_gettid);
  usr1_count++;
}

void hit(void) {}
void worker_stop(void) {}
void all_done(void) {}

void *spinner(void *arg) {
  (void)arg;
  while (!done_flag) spin_a++;
  return 0;
}

void *hitter(void *arg) {
  (void)arg;
  unsigned k = 0;
  while (!spin_a) {  /* the spinner is past its start (signals unblocked) */
  }
  while (!done_flag) {
    /* A varying delay, so that a step of the other thread sometimes
     * finishes before this one's breakpoint and sometimes after: none, or
     * a sleep of 1 to 19 ms. Not a busy loop: on a loaded machine (CI runs
     * two sanitized tests at once on two cores) the stub may take some ms
     * to collect a stop, and when both stops are waiting it takes them in
     * the kernel's order, which is always the same; a sleep also leaves
     * the CPU to the stepped thread. Drawn at random, not k % N: the test
     * stops here twice per round, so k % N would keep one parity. */
    k = k * 1103515245u + 12345u;
    unsigned r = (k >> 16) % 32, ms = r < 12 ? 0 : r - 12;
    if (ms) {
      struct timespec d = {0, (long)ms * 1000000L};
      while (nanosleep(&d, &d) != 0) {
      }
    }
    hit();
  }
  return 0;
}

void *stopper(void *arg) {
  (void)arg;
  worker_stop();
  return 0;
}

void child_before_exec(void) {}

void *forker(void *arg) {
  (void)arg;
  while (!done_flag) {
    pid_t c = fork();
    if (c == 0) _exit(0);
    if (c > 0) waitpid(c, 0, 0);
  }
  return 0;
}

static void wait_for_main_zombie(void) {
  char path[64], buf[512];
  snprintf(path, sizeof path, "/proc/self/task/%d/stat", main_tid);
  for (int i = 0; i < 500; i++) {
    FILE *f = fopen(path, "r");
    if (!f) break;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    char *close = strrchr(buf, ')');
    if (close && close[2] == 'Z') break;
    usleep(10000);
  }
}

void *outliver(void *arg) {
  (void)arg;
  wait_for_main_zombie();
  worker_stop();
  printf("worker done\n");
  fflush(stdout);
  _exit(0);
}

void *group_exiter(void *arg) {
  (void)arg;
  worker_stop();
  exit(0);
}

/* Exits only this thread (SYS_exit, not exit_group), after main. */
void *code_exiter(void *arg) {
  wait_for_main_zombie();
  syscall(SYS_exit, *(int *)arg);
  return 0;
}

int main(int argc, char **argv) {
  const char *mode = argc > 1 ? argv[1] : "";
  signal(SIGUSR1, on_usr1);
  main_tid = syscall(SYS_gettid);
  pthread_t a, b;
  if (strcmp(mode, "spin") == 0) {
    pthread_create(&a, 0, spinner, 0);
    pthread_create(&b, 0, hitter, 0);
    sleep(20);
    done_flag = 1;
  } else if (strcmp(mode, "fork") == 0) {
    pthread_create(&a, 0, forker, 0);
    pthread_create(&b, 0, hitter, 0);
    sleep(20);
    done_flag = 1;
  } else if (strcmp(mode, "vfork") == 0) {
    pid_t c = vfork();
    if (c == 0) {
      child_before_exec();
      execl("/bin/true", "true", (char *)0);
      _exit(127);
    }
    int status = 0;
    waitpid(c, &status, 0);
    printf("vfork child exited %d\n", WIFEXITED(status) ? WEXITSTATUS(status) : -1);
    return 0;
  } else if (strcmp(mode, "leader") == 0) {
    pthread_create(&a, 0, outliver, 0);
    pthread_exit(0);
  } else if (strcmp(mode, "leader-code") == 0) {
    static int codes[4] = {2, 3, 4, 5};
    for (int i = 0; i < 4; i++) pthread_create(&a, 0, code_exiter, &codes[i]);
    syscall(SYS_exit, 1);
  } else if (strcmp(mode, "thread-exit") == 0) {
    pthread_create(&a, 0, group_exiter, 0);
    sleep(20);
  } else if (strcmp(mode, "read") == 0) {
    char line[128] = "";
    if (!fgets(line, sizeof line, stdin)) strcpy(line, "(nothing)\n");
    printf("read: %s", line);
    return 0;
  } else {
    pthread_create(&a, 0, stopper, 0);
    pthread_join(a, 0);
    for (int i = 0; i < 300 && !usr1_count; i++) usleep(10000);
  }
  all_done();
  printf("usr1 %d by %s\n", usr1_count, usr1_tid == main_tid ? "main" : usr1_tid ? "worker" : "nobody");
  return 0;
}
