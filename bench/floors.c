/* The raw floors under the benchmark's figures (issue 8), measured the way a
 * stub would pay them:
 *   - ptrace stop/resume: the tracee executes int3, the tracer waitpid()s the
 *     SIGTRAP stop and resumes it with PTRACE_CONT (one breakpoint hit, no
 *     registers read, nothing rewound);
 *   - single-step: PTRACE_SINGLESTEP + waitpid;
 *   - PTRACE_GETREGS on a stopped tracee;
 *   - loopback TCP round trip: 1 byte there and back, TCP_NODELAY, between
 *     two processes;
 *   - reading 64 MiB of another process: process_vm_readv, pread of
 *     /proc/PID/mem, and moving 64 MiB through a loopback TCP socket.
 * Each is measured in batches; the table gives the per-operation median,
 * minimum and maximum over the batches, for the processes unpinned, pinned
 * to one CPU, and pinned to two different CPUs (CPU placement alone changes
 * these figures several times over, so compare only side by side).
 *
 * Usage: floors [--tiny]      (built by bench/run.sh or bench/floors.sh) */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/user.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static int batches = 7;
static long iters = 5000;
static size_t mem_size = 64u << 20;

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static void die(const char *what)
{
    perror(what);
    exit(1);
}

/* placement: 0 unpinned, 1 both on CPU a, 2 parent on a, child on b */
static int placement, cpu_a, cpu_b;

static void pin(int cpu)
{
    cpu_set_t s;
    CPU_ZERO(&s);
    CPU_SET(cpu, &s);
    sched_setaffinity(0, sizeof s, &s);
}

static void unpin(void)
{
    cpu_set_t s;
    CPU_ZERO(&s);
    for (int i = 0; i < CPU_SETSIZE; i++)
        CPU_SET(i, &s);
    sched_setaffinity(0, sizeof s, &s);
}

static void place_parent(void)
{
    if (placement == 0)
        unpin();
    else
        pin(cpu_a);
}

static void place_child(void)
{
    if (placement == 0)
        unpin();
    else
        pin(placement == 1 ? cpu_a : cpu_b);
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

struct stat3 {
    double med, min, max;
};

static struct stat3 summarize(double *v, int n)
{
    qsort(v, n, sizeof *v, cmp_double);
    struct stat3 s = {n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2, v[0], v[n - 1]};
    return s;
}

/* A traced child stopped at its SIGSTOP; `body` is what it runs after. */
static pid_t traced_child(void (*body)(void))
{
    pid_t pid = fork();
    if (pid < 0)
        die("fork");
    if (pid == 0) {
        place_child();
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (ptrace(PTRACE_TRACEME, 0, 0, 0) < 0)
            _exit(1);
        raise(SIGSTOP);
        body();
        _exit(0);
    }
    int st;
    if (waitpid(pid, &st, 0) != pid || !WIFSTOPPED(st))
        die("waitpid (initial stop)");
    ptrace(PTRACE_SETOPTIONS, pid, 0, PTRACE_O_EXITKILL);
    return pid;
}

static void end_child(pid_t pid)
{
    kill(pid, SIGKILL);
    waitpid(pid, 0, 0);
}

static void int3_forever(void)
{
    for (;;)
        __asm__ volatile("int3");
}

static void spin_forever(void)
{
    volatile unsigned long x = 0;
    for (;;)
        x++;
}

static double bp_batch(pid_t pid)
{
    int st;
    double t0 = now();
    for (long i = 0; i < iters; i++) {
        if (ptrace(PTRACE_CONT, pid, 0, 0) < 0)
            die("PTRACE_CONT");
        if (waitpid(pid, &st, 0) != pid || !WIFSTOPPED(st) || WSTOPSIG(st) != SIGTRAP)
            die("waitpid (int3)");
    }
    return (now() - t0) / iters;
}

static double step_batch(pid_t pid)
{
    int st;
    double t0 = now();
    for (long i = 0; i < iters; i++) {
        if (ptrace(PTRACE_SINGLESTEP, pid, 0, 0) < 0)
            die("PTRACE_SINGLESTEP");
        if (waitpid(pid, &st, 0) != pid || !WIFSTOPPED(st))
            die("waitpid (step)");
    }
    return (now() - t0) / iters;
}

static double getregs_batch(pid_t pid)
{
    struct user_regs_struct r;
    double t0 = now();
    for (long i = 0; i < iters; i++)
        if (ptrace(PTRACE_GETREGS, pid, 0, &r) < 0)
            die("PTRACE_GETREGS");
    return (now() - t0) / iters;
}

static void tcp_pair(int *client, int *server)
{
    int l = socket(AF_INET, SOCK_STREAM, 0), one = 1;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    if (l < 0 || bind(l, (void *)&a, sizeof a) || listen(l, 1) || getsockname(l, (void *)&a, &len))
        die("listen");
    *client = socket(AF_INET, SOCK_STREAM, 0);
    if (connect(*client, (void *)&a, sizeof a))
        die("connect");
    *server = accept(l, 0, 0);
    if (*server < 0)
        die("accept");
    close(l);
    setsockopt(*client, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    setsockopt(*server, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

static pid_t echo_child(int fd, int other)
{
    pid_t pid = fork();
    if (pid == 0) {
        place_child();
        close(other);
        char c;
        while (read(fd, &c, 1) == 1)
            if (write(fd, &c, 1) != 1)
                break;
        _exit(0);
    }
    close(fd);
    return pid;
}

static double rtt_batch(int fd)
{
    char c = 'x';
    double t0 = now();
    for (long i = 0; i < iters; i++)
        if (write(fd, &c, 1) != 1 || read(fd, &c, 1) != 1)
            die("echo");
    return (now() - t0) / iters;
}

/* A child holding mem_size bytes of non-zero memory; its address arrives
 * through the pipe. */
static pid_t memory_child(uintptr_t *addr)
{
    int fds[2];
    if (pipe(fds))
        die("pipe");
    pid_t pid = fork();
    if (pid == 0) {
        place_child();
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        close(fds[0]);
        char *p = mmap(0, mem_size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        for (size_t i = 0; i < mem_size; i++)
            p[i] = (char)(i * 7 + 1);
        uintptr_t a = (uintptr_t)p;
        if (write(fds[1], &a, sizeof a) != sizeof a)
            _exit(1);
        for (;;)
            pause();
    }
    close(fds[1]);
    if (read(fds[0], addr, sizeof *addr) != sizeof *addr)
        die("memory child");
    close(fds[0]);
    return pid;
}

static double vm_readv_once(pid_t pid, uintptr_t addr, char *buf)
{
    double t0 = now();
    size_t done = 0;
    while (done < mem_size) {
        struct iovec l = {buf + done, mem_size - done}, r = {(void *)(addr + done), mem_size - done};
        ssize_t n = process_vm_readv(pid, &l, 1, &r, 1, 0);
        if (n <= 0)
            die("process_vm_readv");
        done += n;
    }
    return now() - t0;
}

static double procmem_once(int fd, uintptr_t addr, char *buf)
{
    double t0 = now();
    size_t done = 0;
    while (done < mem_size) {
        ssize_t n = pread(fd, buf + done, mem_size - done, (off_t)(addr + done));
        if (n <= 0)
            die("pread /proc/PID/mem");
        done += n;
    }
    return now() - t0;
}

static double tcp_bulk_once(int fd, char *buf)
{
    double t0 = now();
    size_t done = 0;
    while (done < mem_size) {
        ssize_t n = write(fd, buf + done, mem_size - done);
        if (n <= 0)
            die("write");
        done += n;
    }
    char c;
    if (read(fd, &c, 1) != 1) /* the sink acknowledges the whole transfer */
        die("ack");
    return now() - t0;
}

static pid_t sink_child(int fd, int other)
{
    pid_t pid = fork();
    if (pid == 0) {
        place_child();
        close(other);
        static char b[1 << 16];
        for (;;) {
            size_t got = 0;
            while (got < mem_size) {
                ssize_t n = read(fd, b, sizeof b);
                if (n <= 0)
                    _exit(0);
                got += n;
            }
            if (write(fd, "k", 1) != 1)
                _exit(0);
        }
    }
    close(fd);
    return pid;
}

static void row(const char *name, const char *where, double *v, int n, double scale, const char *unit)
{
    struct stat3 s = summarize(v, n);
    printf("| %-38s | %-10s | %9.2f | %9.2f | %9.2f | %-5s |\n", name, where, s.med * scale, s.min * scale,
           s.max * scale, unit);
}

int main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "--tiny") == 0) {
        batches = 3;
        iters = 200;
        mem_size = 1u << 20;
    }
    signal(SIGPIPE, SIG_IGN);
    cpu_set_t all;
    sched_getaffinity(0, sizeof all, &all);
    int ncpu = CPU_COUNT(&all);
    cpu_a = -1;
    for (int i = 0; i < CPU_SETSIZE; i++)
        if (CPU_ISSET(i, &all)) {
            if (cpu_a < 0)
                cpu_a = i;
            else {
                cpu_b = i;
                break;
            }
        }
    const char *names[] = {"unpinned", "same CPU", "two CPUs"};
    int nplace = ncpu > 1 ? 3 : 2;

    printf("Floors: per operation, median/min/max over %d batches of %ld (memory: of one %zu MiB read)\n",
           batches, iters, mem_size >> 20);
    printf("| %-38s | %-10s | %9s | %9s | %9s | %-5s |\n", "floor", "placement", "median", "min", "max", "unit");
    printf("|----------------------------------------|------------|-----------|-----------|-----------|-------|\n");
    double v[64];
    for (placement = 0; placement < nplace; placement++) {
        const char *where = names[placement];
        place_parent();
        pid_t pid = traced_child(int3_forever);
        for (int b = 0; b < batches; b++)
            v[b] = bp_batch(pid);
        row("int3 stop + PTRACE_CONT (waitpid)", where, v, batches, 1e6, "us");
        for (int b = 0; b < batches; b++)
            v[b] = getregs_batch(pid);
        row("PTRACE_GETREGS", where, v, batches, 1e6, "us");
        end_child(pid);

        pid = traced_child(spin_forever);
        for (int b = 0; b < batches; b++)
            v[b] = step_batch(pid);
        row("PTRACE_SINGLESTEP + waitpid", where, v, batches, 1e6, "us");
        end_child(pid);

        int c, s;
        tcp_pair(&c, &s);
        pid_t echo = echo_child(s, c);
        for (int b = 0; b < batches; b++)
            v[b] = rtt_batch(c);
        row("loopback TCP round trip (1 byte)", where, v, batches, 1e6, "us");
        close(c);
        waitpid(echo, 0, 0);
    }

    /* Memory: unpinned only (bandwidth more than latency). */
    placement = 0;
    place_parent();
    uintptr_t addr;
    pid_t holder = memory_child(&addr);
    char *buf = malloc(mem_size);
    memset(buf, 0, mem_size);
    for (int b = 0; b < batches; b++)
        v[b] = vm_readv_once(holder, addr, buf);
    row("process_vm_readv, whole buffer", "unpinned", v, batches, 1e3, "ms");
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/mem", holder);
    int fd = open(path, O_RDONLY);
    if (fd < 0)
        die("open /proc/PID/mem");
    for (int b = 0; b < batches; b++)
        v[b] = procmem_once(fd, addr, buf);
    row("pread /proc/PID/mem, whole buffer", "unpinned", v, batches, 1e3, "ms");
    close(fd);
    end_child(holder);

    int c, s;
    tcp_pair(&c, &s);
    pid_t sink = sink_child(s, c);
    for (int b = 0; b < batches; b++)
        v[b] = tcp_bulk_once(c, buf);
    row("same bytes through loopback TCP", "unpinned", v, batches, 1e3, "ms");
    close(c);
    waitpid(sink, 0, 0);
    printf("\n");
    return 0;
}
