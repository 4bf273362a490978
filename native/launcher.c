// cnikit launcher: the one native executable behind every plugin in dist/bin (a copy per CNI
// type; the type is the file's own name). A CNI call is handed to the warm engine of the
// caller's network namespace over an abstract unix socket (the kernel scopes abstract names to
// the netns, so each namespace has its own engine), and stdout, stderr and the exit code are
// relayed back. When no engine answers, the plugin runs exactly as before: this process execs
// Node on the same bundle (dist/bin/.lib), with the caller's fds, so no relay stays in between;
// and it starts an engine for the next call, detached, once this call has ended.
//
// The wire protocol and the names are described in engine/protocol.ts, which must match.
// The bundle directory is compiled in (binding.gyp), so an installed copy runs with an empty
// environment from any directory. It does not parse JSON or know any plugin: policy lives in TS.
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#ifndef CNIKIT_LIB
#error "CNIKIT_LIB (the absolute path of dist/bin/.lib) must be defined"
#endif

#define MAX_REQUEST (8u << 20)  // engine/protocol.ts MAX_REQUEST_BYTES
// How long an engine may take to answer before the call runs fresh: from connect to its 'a'.
// A stopped or wedged engine costs a call this much, never more; the call itself is not bounded.
#define ACK_MS 1500
enum mode { ON, NOSTART, OFF };
extern char **environ;
static char lib[PATH_MAX];
// How `cnikit install` recognises a file as ours (cnikit/install.ts).
__attribute__((used)) static const char marker[] = "__cnikit_launcher__";

static long long now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1000LL + ts.tv_nsec / 1000000;
}

// Waits until fd is ready for `ev`; 0 when it is, -1 once `deadline` (ms, CLOCK_MONOTONIC;
// < 0: none) has passed. The engine socket is non-blocking: every wait on it goes through here.
static int wait_fd(int fd, short ev, long long deadline) {
  struct pollfd p = {fd, ev, 0};
  for (;;) {
    long long left = deadline < 0 ? -1 : deadline - now_ms();
    if (deadline >= 0 && left <= 0) return -1;
    int r = poll(&p, 1, (int)left);
    if (r > 0) return 0;
    if (r == 0 || errno != EINTR) return -1;
  }
}

// 0 = all written; -1 = closed or failed; -2 = the deadline passed.
static int writeall(int fd, const void *p, size_t n, long long deadline) {
  const char *c = p;
  while (n) {
    ssize_t w = send(fd, c, n, MSG_NOSIGNAL);
    if (w < 0 && errno == ENOTSOCK) w = write(fd, c, n);
    if (w < 0 && errno == EINTR) continue;
    if (w < 0 && errno == EAGAIN) { if (wait_fd(fd, POLLOUT, deadline) < 0) return -2; continue; }
    if (w <= 0) return -1;
    c += w, n -= (size_t)w;
  }
  return 0;
}

// 0 = all read; -1 = EOF or failed; -2 = the deadline passed.
static int readall(int fd, void *p, size_t n, long long deadline) {
  char *c = p;
  while (n) {
    ssize_t r = read(fd, c, n);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0 && errno == EAGAIN) { if (wait_fd(fd, POLLIN, deadline) < 0) return -2; continue; }
    if (r <= 0) return -1;
    c += r, n -= (size_t)r;
  }
  return 0;
}

// "\0cnikit/engine/<fnv-1a 64 of the bundle dir, hex><suffix>": one engine per netns and build.
static socklen_t engine_addr(struct sockaddr_un *sa, const char *suffix) {
  uint64_t h = 0xcbf29ce484222325ull;
  for (const char *c = lib; *c; c++) h = (h ^ (unsigned char)*c) * 0x100000001b3ull;
  memset(sa, 0, sizeof(*sa));
  sa->sun_family = AF_UNIX;
  int n = snprintf(sa->sun_path + 1, sizeof(sa->sun_path) - 1, "cnikit/engine/%016llx%s", (unsigned long long)h, suffix);
  return (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + n);
}

// An fd connected to the engine; -1: none listens (ECONNREFUSED); -2: one listens but its
// backlog is full (EAGAIN: it accepts nothing, stopped or swamped).
static int engine_connect(void) {
  struct sockaddr_un sa;
  socklen_t len = engine_addr(&sa, "");
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd >= 0 && connect(fd, (struct sockaddr *)&sa, len) == 0) return fd;
  int busy = errno == EAGAIN;
  if (fd >= 0) close(fd);
  return busy ? -2 : -1;
}

static enum mode parse_mode(const char *v) {
  if (!strcmp(v, "off") || !strcmp(v, "0") || !strcmp(v, "no") || !strcmp(v, "false")) return OFF;
  return strcmp(v, "nostart") ? ON : NOSTART;
}

// CNIKIT_ENGINE, else `engine = ...` in the config file (engine/config.ts documents both).
static enum mode engine_mode(void) {
  const char *v = getenv("CNIKIT_ENGINE");
  if (v && *v) return parse_mode(v);
  const char *path = getenv("CNIKIT_ENGINE_CONF");
  FILE *f = fopen(path && *path ? path : "/etc/cnikit/engine.conf", "re");
  enum mode m = ON;
  char line[512], key[64], val[256];
  while (f && fgets(line, sizeof(line), f)) {
    if (sscanf(line, " %63[^= \t#] = %255[^ \t\r\n#]", key, val) == 2 && !strcmp(key, "engine")) m = parse_mode(val);
  }
  if (f) fclose(f);
  return m;
}

// Puts bytes already read from stdin back as fd 0 (a memfd), for a fresh run after all.
static void restore_stdin(const char *buf, size_t n) {
  int fd = (int)syscall(SYS_memfd_create, "stdin", 0);
  if (fd < 0 || writeall(fd, buf, n, -1) < 0 || lseek(fd, 0, SEEK_SET) < 0 || dup2(fd, 0) < 0) {
    perror("cnikit launcher: memfd");
    exit(1);
  }
  close(fd);
}

static void put_field(char **p, const void *data, uint32_t n) {
  memcpy(*p, &n, 4);  // little-endian on every Linux target Node runs on here
  memcpy(*p + 4, data, n);
  *p += 4 + n;
}

// Runs the call through the engine on `fd`. Returns only when the engine took nothing on (it
// closed before acknowledging the call, or did not acknowledge it within ACK_MS): the caller
// then runs it fresh, stdin restored.
static void call_engine(int fd, const char *self, const char *type) {
  size_t cap = 65536, n = 0;
  char *in = malloc(cap);
  for (ssize_t r; in;) {
    if (n == cap && !(in = realloc(in, cap *= 2))) break;
    if ((r = read(0, in + n, cap - n)) < 0 && errno == EINTR) continue;
    if (r < 0) { close(fd); if (n) restore_stdin(in, n); return; }  // fresh, as it would fail today
    if (r == 0) break;
    n += (size_t)r;
  }
  if (!in) { perror("cnikit launcher"); exit(1); }
  size_t envlen = 0;
  for (char **e = environ; *e; e++) envlen += strlen(*e) + 1;
  size_t total = 6 + 16 + strlen(self) + strlen(type) + envlen + n;
  if (total > MAX_REQUEST) { close(fd); restore_stdin(in, n); return; }
  char *req = malloc(total), *p = req + 6;
  memcpy(req, "CNKE\2C", 6);
  put_field(&p, self, (uint32_t)strlen(self));
  put_field(&p, type, (uint32_t)strlen(type));
  uint32_t el = (uint32_t)envlen;
  memcpy(p, &el, 4), p += 4;
  for (char **e = environ; *e; e++) { size_t l = strlen(*e) + 1; memcpy(p, *e, l); p += l; }
  put_field(&p, in, (uint32_t)n);
  long long deadline = now_ms() + ACK_MS;
  // A failed send is not final: the engine may have answered (a refusal) before closing.
  int sent = writeall(fd, req, total, deadline);
  free(req);
  char *ack = NULL, hdr[5];
  int output = 0, r;
  while (sent != -2 && (r = readall(fd, hdr, 5, ack ? -1 : deadline)) == 0) {
    uint32_t len;
    memcpy(&len, hdr + 1, 4);
    char *data = malloc((size_t)len + 1);
    if (!data || readall(fd, data, len, ack ? -1 : deadline) < 0) break;
    data[len] = 0;
    if (hdr[0] == 'x') exit(len ? (unsigned char)data[0] : 1);
    if (hdr[0] == 'a' && !ack) {
      // Why confirm: the engine starts the call only on this byte, so a launcher that gave up
      // waiting (and runs the call itself) can never have it run a second time by the engine.
      if (writeall(fd, "g", 1, -1) < 0) { free(data); break; }
      shutdown(fd, SHUT_WR);
      ack = data;
      continue;
    }
    if (hdr[0] == 'o' || hdr[0] == 'e') { output = 1; writeall(hdr[0] == 'o' ? 1 : 2, data, len, -1); }
    free(data);
  }
  // No ack (closed, declined, or no answer in time): nothing ran there; run it here.
  if (!ack && !output) { close(fd); restore_stdin(in, n); return; }
  // The engine ended in the middle of the call (killed, say): say so the CNI way.
  const char *msg = ack ? ack : "{\"code\":999,\"msg\":\"the cnikit engine closed the connection during the call\"}\n";
  writeall(1, msg, strlen(msg), -1);
  exit(1);
}

// Starts an engine, unless another launcher is doing so: the starter holds the abstract
// ".../starting" name until the engine listens (abstract names vanish with their holder).
static void start_engine(const char *self, const char *type) {
  struct sockaddr_un sa;
  socklen_t len = engine_addr(&sa, "/starting");
  int s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (s >= 0 && s < 3) { int t = fcntl(s, F_DUPFD_CLOEXEC, 3); close(s); s = t; }  // fds 0-2 closed
  if (s < 0 || bind(s, (struct sockaddr *)&sa, len) < 0) { if (s >= 0) close(s); return; }
  // An engine may have started between our connect and bind: then use it.
  int c = engine_connect();
  if (c != -1) { close(s); if (c >= 0) call_engine(c, self, type); return; }
  // Not waited for: the child outlives this process (soon the plugin), then is init's.
  pid_t caller = getpid();
  if (fork() == 0) {
    setsid();
    int null = open("/dev/null", O_RDWR);
    for (int i = 0; i <= 2; i++) dup2(null, i);  // never hold the runtime's stdout or stderr
    if (s == 3) fcntl(3, F_SETFD, 0); else dup2(s, 3);
    syscall(SYS_close_range, 4, ~0u, 0);
    // Why wait: the engine's start (~50 ms of CPU) must not slow the call that started it.
    int pidfd = (int)syscall(SYS_pidfd_open, caller, 0);
    struct pollfd pf = {pidfd, POLLIN, 0};
    if (pidfd >= 0) poll(&pf, 1, 30000);
    if (pidfd >= 0) close(pidfd);
    char *env[16] = {"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"};
    int k = 1;
    for (char **e = environ; *e && k < 15; e++) if (!strncmp(*e, "CNIKIT_ENGINE", 13)) env[k++] = *e;
    env[k] = NULL;
    char node[PATH_MAX + 8], script[PATH_MAX + 16];
    snprintf(node, sizeof(node), "%s/node", lib);
    snprintf(script, sizeof(script), "%s/launch.cjs", lib);
    char *argv[] = {node, "--max-semi-space-size=2", script, "engine", (char *)self, "--starting-fd", "3", NULL};
    execve(node, argv, env);
    _exit(127);
  }
  close(s);
}

int main(int argc, char **argv) {
  if (!realpath(CNIKIT_LIB, lib)) snprintf(lib, sizeof(lib), "%s", CNIKIT_LIB);
  char exe[PATH_MAX], self[PATH_MAX * 2];
  ssize_t el = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
  exe[el > 0 ? el : 0] = 0;
  const char *type = strrchr(exe, '/') ? strrchr(exe, '/') + 1 : argv[0];
  // `self` is the path the call came in through, as Node's argv[1] is for a #! script.
  char cwd[PATH_MAX];
  if (argv[0][0] == '/') snprintf(self, sizeof(self), "%s", argv[0]);
  else if (strchr(argv[0], '/') && getcwd(cwd, sizeof(cwd))) snprintf(self, sizeof(self), "%s/%s", cwd, argv[0]);
  else snprintf(self, sizeof(self), "%s", exe);
  const char *cmd = getenv("CNI_COMMAND");
  // Only CNI calls go to the engine; other uses (dnsname --responder, the about text) run fresh.
  if (argc == 1 && cmd && *cmd && geteuid() == 0) {
    enum mode m = engine_mode();
    int fd = m == OFF ? -1 : engine_connect();
    if (fd >= 0) call_engine(fd, self, type);
    else if (fd == -1 && m == ON) start_engine(self, type);  // -2: one runs, but is not answering
  }
  char node[PATH_MAX + 8], script[PATH_MAX + 16];
  snprintf(node, sizeof(node), "%s/node", lib);
  snprintf(script, sizeof(script), "%s/launch.cjs", lib);
  char **args = calloc((size_t)argc + 4, sizeof(char *));
  args[0] = node, args[1] = script, args[2] = (char *)type, args[3] = self;
  for (int i = 1; i < argc; i++) args[i + 3] = argv[i];
  execv(node, args);
  fprintf(stderr, "cnikit launcher: cannot run %s: %s\n", node, strerror(errno));
  return 127;
}
