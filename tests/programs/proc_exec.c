/* Execs its first argument (with the rest as its arguments): a process
 * that becomes another program, for `catch exec`. */
#include <stdio.h>
#include <unistd.h>

int main(int argc, char **argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: proc_exec PROG [ARGS...]\n");
    return 2;
  }
  printf("proc_exec: executing %s\n", argv[1]);
  fflush(stdout);
  execv(argv[1], argv + 1);
  perror("execv");
  return 127;
}
