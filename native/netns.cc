// cnikit native layer: the only C++ in the project.
//
// It does what JavaScript cannot: open a netlink socket inside another network namespace,
// exchange raw datagrams with the kernel, read/write /proc/sys inside a namespace, take flock()
// locks, create a named netns, and setns+exec for `cnikit run`. It carries no policy: all message
// layout and decisions live in TypeScript (plugins/core/netlink).
//
// Why a thread per namespace job: setns(CLONE_NEWNET) changes the namespace of the calling
// thread only. We do it on a short-lived std::thread that we create and join, so no Node or libuv
// thread ever changes namespace. A socket keeps the namespace it was created in after the thread
// ends, and so does an open /proc/sys file.
#include <napi.h>

#include <errno.h>
#include <fcntl.h>
#include <linux/netlink.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <functional>
#include <string>
#include <thread>
#include <vector>

namespace {

Napi::Error ErrnoError(Napi::Env env, int err, const std::string& syscall, const std::string& what = "") {
  const char* name = strerrorname_np(err);
  std::string msg = syscall + (what.empty() ? "" : " " + what) + ": " + strerror(err);
  Napi::Error e = Napi::Error::New(env, msg);
  e.Set("code", Napi::String::New(env, name ? name : "EUNKNOWN"));
  e.Set("errno", Napi::Number::New(env, err));
  e.Set("syscall", Napi::String::New(env, syscall));
  return e;
}

struct JobResult {
  int value = -1;
  int err = 0;
  std::string syscall;
  std::string data;
};

// Runs fn on a fresh thread that first joins the namespace at nsPath (empty = stay in ours).
JobResult RunInNetns(const std::string& nsPath, const std::function<void(JobResult&)>& fn) {
  JobResult r;
  std::thread t([&]() {
    if (!nsPath.empty()) {
      int nsfd = open(nsPath.c_str(), O_RDONLY | O_CLOEXEC);
      if (nsfd < 0) { r.err = errno; r.syscall = "open"; return; }
      // Why: setns on this thread only; the thread ends right after the job.
      if (setns(nsfd, CLONE_NEWNET) < 0) { r.err = errno; r.syscall = "setns"; close(nsfd); return; }
      close(nsfd);
    }
    fn(r);
  });
  t.join();
  return r;
}

std::string OptPath(const Napi::Value& v) {
  if (v.IsUndefined() || v.IsNull()) return "";
  return v.As<Napi::String>().Utf8Value();
}

void Usage(Napi::Env env, bool ok, const char* usage) {
  if (!ok) throw Napi::TypeError::New(env, std::string("Usage: ") + usage);
}

// nlOpen(protocol, netnsPath|null) -> fd
Napi::Value NlOpen(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Usage(env, info.Length() >= 1 && info[0].IsNumber(), "nlOpen(protocol: number, netnsPath?: string|null)");
  int proto = info[0].As<Napi::Number>().Int32Value();
  std::string ns = info.Length() > 1 ? OptPath(info[1]) : "";
  JobResult r = RunInNetns(ns, [proto](JobResult& r) {
    int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, proto);
    if (fd < 0) { r.err = errno; r.syscall = "socket"; return; }
    int one = 1;
    // Extended ACK gives the kernel's own reason for EINVAL & co; CAP_ACK keeps error acks short.
    setsockopt(fd, SOL_NETLINK, NETLINK_EXT_ACK, &one, sizeof(one));
    setsockopt(fd, SOL_NETLINK, NETLINK_CAP_ACK, &one, sizeof(one));
    int buf = 1 << 20;
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &buf, sizeof(buf));
    setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &buf, sizeof(buf));
    struct sockaddr_nl sa;
    memset(&sa, 0, sizeof(sa));
    sa.nl_family = AF_NETLINK;
    if (bind(fd, reinterpret_cast<struct sockaddr*>(&sa), sizeof(sa)) < 0) {
      r.err = errno; r.syscall = "bind"; close(fd); return;
    }
    r.value = fd;
  });
  if (r.err) throw ErrnoError(env, r.err, r.syscall, ns);
  return Napi::Number::New(env, r.value);
}

// nlSend(fd, buffer) -> bytes sent
Napi::Value NlSend(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Usage(env, info.Length() == 2 && info[0].IsNumber() && info[1].IsBuffer(), "nlSend(fd: number, msg: Buffer)");
  int fd = info[0].As<Napi::Number>().Int32Value();
  auto buf = info[1].As<Napi::Buffer<uint8_t>>();
  struct sockaddr_nl sa;
  memset(&sa, 0, sizeof(sa));
  sa.nl_family = AF_NETLINK;
  ssize_t n;
  do {
    n = sendto(fd, buf.Data(), buf.Length(), 0, reinterpret_cast<struct sockaddr*>(&sa), sizeof(sa));
  } while (n < 0 && errno == EINTR);
  if (n < 0) throw ErrnoError(env, errno, "sendto");
  return Napi::Number::New(env, static_cast<double>(n));
}

// nlRecv(fd, timeoutMs) -> Buffer | null (timeout)
Napi::Value NlRecv(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Usage(env, info.Length() == 2 && info[0].IsNumber() && info[1].IsNumber(), "nlRecv(fd: number, timeoutMs: number)");
  int fd = info[0].As<Napi::Number>().Int32Value();
  int timeout = info[1].As<Napi::Number>().Int32Value();
  struct pollfd p = {fd, POLLIN, 0};
  int rc;
  do { rc = poll(&p, 1, timeout); } while (rc < 0 && errno == EINTR);
  if (rc < 0) throw ErrnoError(env, errno, "poll");
  if (rc == 0) return env.Null();
  // Why: peek with MSG_TRUNC first so a large dump datagram is never cut short.
  ssize_t len;
  do { len = recv(fd, nullptr, 0, MSG_PEEK | MSG_TRUNC); } while (len < 0 && errno == EINTR);
  if (len < 0) throw ErrnoError(env, errno, "recv");
  std::vector<uint8_t> data(len > 0 ? len : 1);
  ssize_t n;
  do { n = recv(fd, data.data(), data.size(), 0); } while (n < 0 && errno == EINTR);
  if (n < 0) throw ErrnoError(env, errno, "recv");
  return Napi::Buffer<uint8_t>::Copy(env, data.data(), n);
}

// sysctlWrite(netnsPath|null, key, value): key like "net/ipv4/ip_forward"
Napi::Value SysctlWrite(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Usage(env, info.Length() == 3 && info[1].IsString() && info[2].IsString(),
        "sysctlWrite(netnsPath: string|null, key: string, value: string)");
  std::string ns = OptPath(info[0]);
  std::string path = "/proc/sys/" + info[1].As<Napi::String>().Utf8Value();
  std::string value = info[2].As<Napi::String>().Utf8Value();
  JobResult r = RunInNetns(ns, [&](JobResult& r) {
    int fd = open(path.c_str(), O_WRONLY | O_CLOEXEC);
    if (fd < 0) { r.err = errno; r.syscall = "open"; return; }
    if (write(fd, value.data(), value.size()) < 0) { r.err = errno; r.syscall = "write"; }
    close(fd);
  });
  if (r.err) throw ErrnoError(env, r.err, r.syscall, path);
  return env.Undefined();
}

// sysctlRead(netnsPath|null, key) -> string (trimmed of the trailing newline)
Napi::Value SysctlRead(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Usage(env, info.Length() == 2 && info[1].IsString(), "sysctlRead(netnsPath: string|null, key: string)");
  std::string ns = OptPath(info[0]);
  std::string path = "/proc/sys/" + info[1].As<Napi::String>().Utf8Value();
  JobResult r = RunInNetns(ns, [&](JobResult& r) {
    int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) { r.err = errno; r.syscall = "open"; return; }
    char buf[4096];
    ssize_t n = read(fd, buf, sizeof(buf));
    if (n < 0) { r.err = errno; r.syscall = "read"; } else { r.data.assign(buf, n); }
    close(fd);
  });
  if (r.err) throw ErrnoError(env, r.err, r.syscall, path);
  std::string s = r.data;
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  return Napi::String::New(env, s);
}

// flock(fd, exclusive: boolean, wait: boolean) -> boolean (false when !wait and the lock is held)
Napi::Value Flock(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Usage(env, info.Length() == 3 && info[0].IsNumber(), "flock(fd: number, exclusive: boolean, wait: boolean)");
  int fd = info[0].As<Napi::Number>().Int32Value();
  int op = info[1].ToBoolean() ? LOCK_EX : LOCK_SH;
  if (!info[2].ToBoolean()) op |= LOCK_NB;
  int rc;
  do { rc = flock(fd, op); } while (rc < 0 && errno == EINTR);
  if (rc < 0) {
    if (errno == EWOULDBLOCK) return Napi::Boolean::New(env, false);
    throw ErrnoError(env, errno, "flock");
  }
  return Napi::Boolean::New(env, true);
}

// funlock(fd)
Napi::Value Funlock(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Usage(env, info.Length() == 1 && info[0].IsNumber(), "funlock(fd: number)");
  if (flock(info[0].As<Napi::Number>().Int32Value(), LOCK_UN) < 0) throw ErrnoError(env, errno, "flock");
  return env.Undefined();
}

// netnsCreate(path): a new network namespace pinned by a bind mount on path (which must exist
// as a regular file), like `ip netns add`.
Napi::Value NetnsCreate(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Usage(env, info.Length() == 1 && info[0].IsString(), "netnsCreate(path: string)");
  std::string path = info[0].As<Napi::String>().Utf8Value();
  JobResult r = RunInNetns("", [&](JobResult& r) {
    // Why: unshare on this helper thread only; the bind mount of its ns file pins the namespace
    // after the thread exits.
    if (unshare(CLONE_NEWNET) < 0) { r.err = errno; r.syscall = "unshare"; return; }
    std::string self = "/proc/self/task/" + std::to_string(syscall(SYS_gettid)) + "/ns/net";
    if (mount(self.c_str(), path.c_str(), "none", MS_BIND, nullptr) < 0) { r.err = errno; r.syscall = "mount"; }
  });
  if (r.err) throw ErrnoError(env, r.err, r.syscall, path);
  return env.Undefined();
}

// netnsDelete(path): unpin a namespace created by netnsCreate (or `ip netns add`).
Napi::Value NetnsDelete(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Usage(env, info.Length() == 1 && info[0].IsString(), "netnsDelete(path: string)");
  std::string path = info[0].As<Napi::String>().Utf8Value();
  if (umount2(path.c_str(), MNT_DETACH) < 0 && errno != EINVAL && errno != ENOENT) throw ErrnoError(env, errno, "umount2", path);
  if (unlink(path.c_str()) < 0 && errno != ENOENT) throw ErrnoError(env, errno, "unlink", path);
  return env.Undefined();
}

// execInNetns(netnsPath, argv[]): join the namespace and exec argv in this process. Only for a
// child process made for that purpose (`cnikit run`); it never returns on success.
Napi::Value ExecInNetns(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Usage(env, (info.Length() == 2 || (info.Length() == 3 && info[2].IsArray())) && info[0].IsString() && info[1].IsArray(),
        "execInNetns(netnsPath: string, argv: string[], binds?: [src: string, dst: string][])");
  std::string ns = info[0].As<Napi::String>().Utf8Value();
  Napi::Array arr = info[1].As<Napi::Array>();
  std::vector<std::string> args;
  for (uint32_t i = 0; i < arr.Length(); i++) args.push_back(arr.Get(i).As<Napi::String>().Utf8Value());
  if (args.empty()) throw Napi::TypeError::New(env, "execInNetns: empty argv");
  std::vector<std::pair<std::string, std::string>> binds;
  if (info.Length() == 3) {
    Napi::Array b = info[2].As<Napi::Array>();
    for (uint32_t i = 0; i < b.Length(); i++) {
      Napi::Value pair = b.Get(i);
      Usage(env, pair.IsArray() && pair.As<Napi::Array>().Length() == 2, "execInNetns: binds are [src, dst] pairs");
      binds.emplace_back(pair.As<Napi::Array>().Get(0u).As<Napi::String>().Utf8Value(), pair.As<Napi::Array>().Get(1u).As<Napi::String>().Utf8Value());
    }
  }
  int nsfd = open(ns.c_str(), O_RDONLY | O_CLOEXEC);
  if (nsfd < 0) throw ErrnoError(env, errno, "open", ns);
  // Why: this thread is about to be replaced by execvp; the namespace switch dies with it if
  // exec fails, because the caller exits right after.
  if (setns(nsfd, CLONE_NEWNET) < 0) { int e = errno; close(nsfd); throw ErrnoError(env, e, "setns", ns); }
  close(nsfd);
  if (!binds.empty()) {
    // Why: like `ip netns exec` with /etc/netns/NAME/: a private mount namespace for the command
    // (unshare CLONE_NEWNS is allowed on one thread of a multithreaded process; exec makes it the
    // process's), slave so that nothing mounted here reaches the caller's, then /sys of the new
    // netns and the bind mounts (resolv.conf, hosts).
    if (unshare(CLONE_NEWNS) < 0) throw ErrnoError(env, errno, "unshare", "CLONE_NEWNS");
    if (mount("", "/", "none", MS_SLAVE | MS_REC, nullptr) < 0) throw ErrnoError(env, errno, "mount", "/ rslave");
    if (umount2("/sys", MNT_DETACH) == 0) mount("sysfs", "/sys", "sysfs", 0, nullptr);  // best effort, as ip netns exec
    for (auto& [src, dst] : binds) {
      if (mount(src.c_str(), dst.c_str(), "none", MS_BIND, nullptr) < 0) throw ErrnoError(env, errno, "mount", dst);
    }
  }
  // Why: Node marks fds 0-2 close-on-exec at startup and ignores SIGPIPE/SIGXFSZ; an exec'd
  // command must get the caller's stdio and default signal handling, as under a shell.
  for (int fd = 0; fd <= 2; fd++) {
    int fl = fcntl(fd, F_GETFD);
    if (fl >= 0) fcntl(fd, F_SETFD, fl & ~FD_CLOEXEC);
  }
  signal(SIGPIPE, SIG_DFL);
  signal(SIGXFSZ, SIG_DFL);
  sigset_t none;
  sigemptyset(&none);
  pthread_sigmask(SIG_SETMASK, &none, nullptr);
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  execvp(argv[0], argv.data());
  throw ErrnoError(env, errno, "execvp", args[0]);
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  exports.Set("nlOpen", Napi::Function::New(env, NlOpen));
  exports.Set("nlSend", Napi::Function::New(env, NlSend));
  exports.Set("nlRecv", Napi::Function::New(env, NlRecv));
  exports.Set("sysctlWrite", Napi::Function::New(env, SysctlWrite));
  exports.Set("sysctlRead", Napi::Function::New(env, SysctlRead));
  exports.Set("flock", Napi::Function::New(env, Flock));
  exports.Set("funlock", Napi::Function::New(env, Funlock));
  exports.Set("netnsCreate", Napi::Function::New(env, NetnsCreate));
  exports.Set("netnsDelete", Napi::Function::New(env, NetnsDelete));
  exports.Set("execInNetns", Napi::Function::New(env, ExecInNetns));
  return exports;
}

}  // namespace

NODE_API_MODULE(netns, Init)
