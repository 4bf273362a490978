// cnikit native layer: the only C++ in the project.
//
// It does what JavaScript cannot: open a netlink socket inside another network namespace,
// exchange raw datagrams with the kernel (blocking, or delivered to a callback from a uv_poll
// watcher on Node's own loop), read/write /proc/sys inside a namespace, take flock() locks
// (without waiting, or waiting on a thread of our own), create a named netns, setns+exec for
// `cnikit run`, create sockets bound inside a namespace (netnsSockets), and batched UDP I/O
// (recvmmsg/sendmmsg). It carries no policy: all message layout and decisions live in
// TypeScript (pkg/netlink, pkg/store, responder/).
//
// Why a thread per namespace job: setns(CLONE_NEWNET) changes the namespace of the calling
// thread only. We do it on a short-lived std::thread that we create and join, so no Node or libuv
// thread ever changes namespace. A socket keeps the namespace it was created in after the thread
// ends, and so does an open /proc/sys file.
#include <napi.h>

#include <errno.h>
#include <malloc.h>
#include <fcntl.h>
#include <arpa/inet.h>
#include <linux/netlink.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <string.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <uv.h>

#include <algorithm>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#ifndef IPV6_FREEBIND
#define IPV6_FREEBIND 78  // linux/in6.h; glibc's netinet/in.h lacks it
#endif

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
// Always a thread of its own: jobs that unshare or setns themselves (netnsCreate,
// netnsSockets) rely on it, so that no namespace change ever reaches the caller's thread.
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

// Runs fn in the namespace at nsPath: on this thread when nsPath is empty (fn must not change
// its thread's namespace), else as RunInNetns. Why: starting a thread costs more than opening
// a socket or reading a sysctl, which the engine does on every call.
JobResult RunJobIn(const std::string& nsPath, const std::function<void(JobResult&)>& fn) {
  if (!nsPath.empty()) return RunInNetns(nsPath, fn);
  JobResult r;
  fn(r);
  return r;
}

std::string OptPath(const Napi::Value& v) {
  if (v.IsUndefined() || v.IsNull()) return "";
  return v.As<Napi::String>().Utf8Value();
}

void Usage(Napi::Env env, bool ok, const char* usage) {
  if (!ok) throw Napi::TypeError::New(env, std::string("Usage: ") + usage);
}

// ---- the sockets nlOpen made, and who may close them ---------------------------------------
//
// Why the addon keeps a list of its own fds: a close() of a number that is no longer ours closes
// whatever took the number meanwhile, and in a process with worker threads (ava's, or any host of
// this library) that is often another thread's libuv loop: its epoll fd (the next epoll_wait fails
// with EBADF: libuv aborts with "uv__io_poll: Assertion `errno == EINTR'"), its signal pipe, or a
// spawnSync's private loop. That is how the crash of issue 10 happened: a Netns closed twice
// (pkg/netlink/netns.ts) closed fd 30 of the other worker. So nlClose closes only a number that
// nlOpen returned and that nobody closed since; anything else is left alone. Each fd is also
// remembered with the environment that opened it, so that a worker thread that ends with sockets
// still open does not leak them (Node's trackUnmanagedFds does the same for fs.open's fds).
std::mutex fdsMu;
std::map<int, napi_env> ownedFds;

// Takes fd off the list; true when it was ours (then the caller closes it, once).
bool Disown(int fd) {
  std::lock_guard<std::mutex> lock(fdsMu);
  return ownedFds.erase(fd) > 0;
}

// nlOpen(protocol, netnsPath|null) -> fd
Napi::Value NlOpen(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Usage(env, info.Length() >= 1 && info[0].IsNumber(), "nlOpen(protocol: number, netnsPath?: string|null)");
  int proto = info[0].As<Napi::Number>().Int32Value();
  std::string ns = info.Length() > 1 ? OptPath(info[1]) : "";
  JobResult r = RunJobIn(ns, [proto](JobResult& r) {
    int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, proto);
    if (fd < 0) { r.err = errno; r.syscall = "socket"; return; }
    int one = 1;
    // Extended ACK gives the kernel's own reason for EINVAL & co; CAP_ACK keeps error acks short.
    setsockopt(fd, SOL_NETLINK, NETLINK_EXT_ACK, &one, sizeof(one));
    setsockopt(fd, SOL_NETLINK, NETLINK_CAP_ACK, &one, sizeof(one));
    // Why strict checking (as iproute2 sets it): rtnetlink then honours the filters in a dump
    // request's header (an address dump of one ifindex returns that link's addresses, not those
    // of every link on a host with hundreds of veths) and refuses malformed requests.
    if (proto == NETLINK_ROUTE) setsockopt(fd, SOL_NETLINK, NETLINK_GET_STRICT_CHK, &one, sizeof(one));
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
  {
    std::lock_guard<std::mutex> lock(fdsMu);
    ownedFds[r.value] = env;
  }
  return Napi::Number::New(env, r.value);
}

bool RawErrnoError(napi_env env, int err, const char* syscall, napi_value* out);

// Throws {code, errno, syscall} with the plain C API and returns the empty value that goes with it.
Napi::Value ThrowErrno(napi_env env, int err, const char* syscall) {
  napi_value e;
  if (RawErrnoError(env, err, syscall, &e)) napi_throw(env, e);
  return Napi::Value();
}

// Sends one datagram to the kernel on netlink socket fd; returns what sendto returns (errno set).
ssize_t SendToKernel(int fd, const uint8_t* data, size_t len) {
  struct sockaddr_nl sa;
  memset(&sa, 0, sizeof(sa));
  sa.nl_family = AF_NETLINK;
  ssize_t n;
  do {
    n = sendto(fd, data, len, 0, reinterpret_cast<struct sockaddr*>(&sa), sizeof(sa));
  } while (n < 0 && errno == EINTR);
  return n;
}

// nlSend(fd, buffer) -> bytes sent. No C++ exceptions after the checks, as nlRecv (below).
Napi::Value NlSend(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Usage(env, info.Length() == 2 && info[0].IsNumber() && info[1].IsBuffer(), "nlSend(fd: number, msg: Buffer)");
  int fd = info[0].As<Napi::Number>().Int32Value();
  auto buf = info[1].As<Napi::Buffer<uint8_t>>();
  ssize_t n = SendToKernel(fd, buf.Data(), buf.Length());
  if (n < 0) return ThrowErrno(env, errno, "sendto");
  napi_value sent;
  if (napi_create_double(env, static_cast<double>(n), &sent) != napi_ok) return Napi::Value();
  return Napi::Value(env, sent);
}

struct SendDone {
  Napi::Promise::Deferred deferred;
  std::vector<uint8_t> msg;
  int fd;
  ssize_t sent = 0;
  int err = 0;
  SendDone(Napi::Env env, int fd_, const uint8_t* data, size_t len) : deferred(Napi::Promise::Deferred::New(env)), msg(data, data + len), fd(fd_) {}
};

// nlSendAsync(fd, buffer) -> Promise<bytes sent>: nlSend on a thread of our own. Why: the kernel
// handles a netlink request inside sendmsg, and some requests hold it long (deleting a link waits
// for RCU grace periods, ~20 ms), which would stall everything else on the JS thread; several
// such waits in flight also overlap in the kernel. The thread sends a copy of the message on a dup
// of fd: the dup keeps the socket open if the caller closes fd meanwhile, so the number can never
// reach another file. The reply is read as any other (nlWatch, nlRecv).
Napi::Value NlSendAsync(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Usage(env, info.Length() == 2 && info[0].IsNumber() && info[1].IsBuffer(), "nlSendAsync(fd: number, msg: Buffer)");
  int fd = info[0].As<Napi::Number>().Int32Value();
  auto buf = info[1].As<Napi::Buffer<uint8_t>>();
  int dupfd = fcntl(fd, F_DUPFD_CLOEXEC, 0);
  if (dupfd < 0) return ThrowErrno(env, errno, "fcntl");
  auto* done = new SendDone(env, dupfd, buf.Data(), buf.Length());
  Napi::Promise promise = done->deferred.Promise();
  auto tsfn = Napi::ThreadSafeFunction::New(env, Napi::Function::New(env, [](const Napi::CallbackInfo&) {}), "cnikit:nlsend", 0, 1);
  std::thread([tsfn, done]() mutable {
    ssize_t n = SendToKernel(done->fd, done->msg.data(), done->msg.size());
    done->sent = n;
    done->err = n < 0 ? errno : 0;
    close(done->fd);
    napi_status s = tsfn.BlockingCall(done, [](Napi::Env env, Napi::Function, SendDone* d) {
      if (d->err) d->deferred.Reject(ErrnoError(env, d->err, "sendto").Value());
      else d->deferred.Resolve(Napi::Number::New(env, static_cast<double>(d->sent)));
      delete d;
    });
    // napi_closing: the environment is gone; nobody waits for the promise any more.
    if (s == napi_ok) tsfn.Release();
    else delete done;
  }).detach();
  return promise;
}

// Reads one datagram without blocking: 1 = got one, 0 = nothing queued, -1 = error (errno set).
// Why peek with MSG_TRUNC first: a large dump datagram is never cut short.
int RecvDatagram(int fd, std::vector<uint8_t>& out) {
  ssize_t len;
  do { len = recv(fd, nullptr, 0, MSG_PEEK | MSG_TRUNC | MSG_DONTWAIT); } while (len < 0 && errno == EINTR);
  if (len < 0) return errno == EAGAIN || errno == EWOULDBLOCK ? 0 : -1;
  out.resize(len > 0 ? len : 1);
  ssize_t n;
  do { n = recv(fd, out.data(), out.size(), MSG_DONTWAIT); } while (n < 0 && errno == EINTR);
  if (n < 0) return errno == EAGAIN || errno == EWOULDBLOCK ? 0 : -1;
  out.resize(n);
  return 1;
}

// nlRecv(fd, timeoutMs) -> Buffer | null (timeout). With a timeout, blocks this thread (for
// short-lived processes); with 0, reads what is queued (the async socket, right after a send).
// Why no C++ exceptions here: it runs right after most sends in the engine and in worker threads,
// and in a worker being terminated every napi call fails; a C++ exception thrown then cannot
// become a JS one and aborts the process. So failures go through the C API, or give nothing.
Napi::Value NlRecv(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Usage(env, info.Length() == 2 && info[0].IsNumber() && info[1].IsNumber(), "nlRecv(fd: number, timeoutMs: number)");
  int fd = info[0].As<Napi::Number>().Int32Value();
  int timeout = info[1].As<Napi::Number>().Int32Value();
  std::vector<uint8_t> data;
  for (;;) {
    struct pollfd p = {fd, POLLIN, 0};
    int rc;
    do { rc = poll(&p, 1, timeout); } while (rc < 0 && errno == EINTR);
    if (rc < 0) return ThrowErrno(env, errno, "poll");
    if (rc == 0) return env.Null();
    int got = RecvDatagram(fd, data);
    if (got < 0) return ThrowErrno(env, errno, "recv");
    if (got > 0) {
      napi_value buf;
      if (napi_create_buffer_copy(env, data.size(), data.data(), nullptr, &buf) != napi_ok) return Napi::Value();
      return Napi::Value(env, buf);
    }
  }
}

// ---- asynchronous receive: a uv_poll watcher on the loop of the calling JS thread ----------
//
// nlWatch(fd, onData) delivers every datagram that arrives on fd to onData(err, datagrams) from
// Node's event loop, so nothing ever blocks waiting for the kernel. The watcher is unref'd: it
// does not keep the process alive by itself (the caller keeps a timer while it waits for a
// reply). nlClose(fd) stops it and closes the fd once libuv is done with it. A watcher still
// open when its environment (a worker thread, say) shuts down is closed, with its fd, by an
// async cleanup hook.

struct Watch {
  napi_env env;
  int fd;
  uv_poll_t poll;
  napi_ref onData = nullptr;
  napi_async_context context = nullptr;
  napi_async_cleanup_hook_handle hook = nullptr;
  bool closing = false;
  bool closeFd = false;  // close fd once the handle is closed (nlClose, or the environment ends)
};

// Why a global map under a mutex: each worker thread has its own env, and they run concurrently.
// A watcher stays in it until its handle is closed, so that nlClose of a socket whose watcher is
// closing still waits for libuv before closing the fd.
std::mutex watchesMu;
std::map<std::pair<napi_env, int>, Watch*> watches;

void OnWatchClosed(uv_handle_t* h) {
  Watch* w = static_cast<Watch*>(h->data);
  {
    std::lock_guard<std::mutex> lock(watchesMu);
    auto it = watches.find({w->env, w->fd});
    if (it != watches.end() && it->second == w) watches.erase(it);
  }
  // Why here and not in nlClose: libuv is done with the fd only once the handle is closed, and
  // until then the number must not be reused by anything else (uv_poll's contract).
  if (w->closeFd) close(w->fd);
  if (w->onData) napi_delete_reference(w->env, w->onData);
  if (w->context) napi_async_destroy(w->env, w->context);
  napi_async_cleanup_hook_handle hook = w->hook;
  delete w;
  if (hook) napi_remove_async_cleanup_hook(hook);
}

// Stops and closes the watcher (once); with closeFd, the fd is closed after it.
void CloseWatch(Watch* w, bool closeFd) {
  if (closeFd && Disown(w->fd)) w->closeFd = true;
  if (w->closing) return;
  w->closing = true;
  uv_poll_stop(&w->poll);
  uv_close(reinterpret_cast<uv_handle_t*>(&w->poll), OnWatchClosed);
}

void OnEnvTeardown(napi_async_cleanup_hook_handle, void* arg) {
  // Nobody can use the socket once its environment is gone.
  CloseWatch(static_cast<Watch*>(arg), true);
}

// Builds {code, errno, syscall} errors with the plain C API: a failure here must never throw
// (node-addon-api turns any failed call into a fatal error when JS cannot run any more).
bool RawErrnoError(napi_env env, int err, const char* syscall, napi_value* out) {
  const char* name = strerrorname_np(err);
  std::string msg = std::string(syscall) + ": " + strerror(err);
  napi_value m, code, no, sc;
  return napi_create_string_utf8(env, msg.c_str(), msg.size(), &m) == napi_ok &&
         napi_create_error(env, nullptr, m, out) == napi_ok &&
         napi_create_string_utf8(env, name ? name : "EUNKNOWN", NAPI_AUTO_LENGTH, &code) == napi_ok &&
         napi_set_named_property(env, *out, "code", code) == napi_ok &&
         napi_create_int32(env, err, &no) == napi_ok && napi_set_named_property(env, *out, "errno", no) == napi_ok &&
         napi_create_string_utf8(env, syscall, NAPI_AUTO_LENGTH, &sc) == napi_ok &&
         napi_set_named_property(env, *out, "syscall", sc) == napi_ok;
}

// Calls onData(err, datagrams). False when JS cannot run here (the environment is shutting
// down: its handles are being closed and the loop still turns, so the poll may fire).
bool Deliver(Watch* w, int err, const char* syscall, std::vector<std::vector<uint8_t>>& got) {
  napi_env env = w->env;
  napi_handle_scope scope;
  if (napi_open_handle_scope(env, &scope) != napi_ok) return false;
  bool ok = true;
  napi_value argv[2], cb, global, result;
  if (err) ok = RawErrnoError(env, err, syscall, &argv[0]);
  else ok = napi_get_null(env, &argv[0]) == napi_ok;
  ok = ok && napi_create_array_with_length(env, got.size(), &argv[1]) == napi_ok;
  for (size_t i = 0; ok && i < got.size(); i++) {
    napi_value buf;
    ok = napi_create_buffer_copy(env, got[i].size(), got[i].data(), nullptr, &buf) == napi_ok &&
         napi_set_element(env, argv[1], static_cast<uint32_t>(i), buf) == napi_ok;
  }
  ok = ok && napi_get_reference_value(env, w->onData, &cb) == napi_ok && cb != nullptr && napi_get_global(env, &global) == napi_ok;
  if (ok && napi_make_callback(env, w->context, global, cb, 2, argv, &result) != napi_ok) {
    // Thrown by onData: report it as Node reports any uncaught exception. No exception
    // pending: JS may not run any more (shutting down).
    bool pending = false;
    napi_value exc;
    if (napi_is_exception_pending(env, &pending) == napi_ok && pending && napi_get_and_clear_last_exception(env, &exc) == napi_ok) {
      napi_fatal_exception(env, exc);
    } else {
      ok = false;
    }
  }
  if (!ok) {
    bool pending = false;
    napi_value exc;
    if (napi_is_exception_pending(env, &pending) == napi_ok && pending) napi_get_and_clear_last_exception(env, &exc);
  }
  napi_close_handle_scope(env, scope);
  return ok;
}

void OnReadable(uv_poll_t* h, int status, int) {
  Watch* w = static_cast<Watch*>(h->data);
  if (w->closing) return;
  int err = 0;
  const char* syscall = "recv";
  if (status < 0) {
    // Why: libuv reports POLLERR as UV_EBADF and stops the watcher. On a netlink socket POLLERR
    // means a pending socket error, ENOBUFS (the kernel dropped messages: the receive queue was
    // full). Reading SO_ERROR clears it; the socket itself is fine, so the watcher goes on, and
    // the error fails what was in flight (any of it may have lost its reply).
    int soerr = 0;
    socklen_t len = sizeof(soerr);
    if (getsockopt(w->fd, SOL_SOCKET, SO_ERROR, &soerr, &len) == 0 && soerr != 0 &&
        uv_poll_start(&w->poll, UV_READABLE, OnReadable) == 0) {
      err = soerr;
    } else {
      err = -status;
      syscall = "poll";
    }
  }
  std::vector<std::vector<uint8_t>> got;
  if (!err) {
    std::vector<uint8_t> data;
    // At most 64 datagrams per turn of the loop; the poll stays readable for the rest.
    for (int i = 0; i < 64; i++) {
      int r = RecvDatagram(w->fd, data);
      if (r < 0) { err = errno; break; }
      if (r == 0) break;
      got.push_back(data);
    }
  }
  if (!err && got.empty()) return;
  if (!Deliver(w, err, syscall, got)) CloseWatch(w, false);
}

// nlWatch(fd, onData(err: Error|null, datagrams: Buffer[]))
Napi::Value NlWatch(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Usage(env, info.Length() == 2 && info[0].IsNumber() && info[1].IsFunction(), "nlWatch(fd: number, onData: (err, datagrams) => void)");
  int fd = info[0].As<Napi::Number>().Int32Value();
  {
    std::lock_guard<std::mutex> lock(fdsMu);
    auto it = ownedFds.find(fd);
    Usage(env, it != ownedFds.end() && it->second == static_cast<napi_env>(env), "nlWatch: fd is not an open socket of nlOpen");
  }
  {
    std::lock_guard<std::mutex> lock(watchesMu);
    Usage(env, watches.find({env, fd}) == watches.end(), "nlWatch: fd is already watched");
  }
  uv_loop_t* loop = nullptr;
  if (napi_get_uv_event_loop(env, &loop) != napi_ok || !loop) throw Napi::Error::New(env, "nlWatch: no event loop");
  Watch* w = new Watch{env, fd, {}};
  w->poll.data = w;
  napi_value name;
  if (napi_create_reference(env, info[1], 1, &w->onData) != napi_ok ||
      napi_create_string_utf8(env, "cnikit:netlink", NAPI_AUTO_LENGTH, &name) != napi_ok ||
      napi_async_init(env, nullptr, name, &w->context) != napi_ok) {
    if (w->onData) napi_delete_reference(env, w->onData);
    delete w;
    throw Napi::Error::New(env, "nlWatch: cannot keep the callback");
  }
  int rc = uv_poll_init(loop, &w->poll, fd);
  if (rc < 0) {
    napi_delete_reference(env, w->onData);
    napi_async_destroy(env, w->context);
    delete w;
    throw ErrnoError(env, -rc, "uv_poll_init");
  }
  uv_unref(reinterpret_cast<uv_handle_t*>(&w->poll));
  rc = uv_poll_start(&w->poll, UV_READABLE, OnReadable);
  if (rc < 0) {
    w->closing = true;
    uv_close(reinterpret_cast<uv_handle_t*>(&w->poll), OnWatchClosed);
    throw ErrnoError(env, -rc, "uv_poll_start");
  }
  napi_add_async_cleanup_hook(env, OnEnvTeardown, w, &w->hook);
  std::lock_guard<std::mutex> lock(watchesMu);
  watches[{env, fd}] = w;
  return env.Undefined();
}

Watch* FindWatch(napi_env env, int fd) {
  std::lock_guard<std::mutex> lock(watchesMu);
  auto it = watches.find({env, fd});
  return it == watches.end() ? nullptr : it->second;
}

// nlUnwatch(fd): stops the watcher of fd (none: nothing to do); the fd stays open.
Napi::Value NlUnwatch(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Usage(env, info.Length() == 1 && info[0].IsNumber(), "nlUnwatch(fd: number)");
  if (Watch* w = FindWatch(env, info[0].As<Napi::Number>().Int32Value())) CloseWatch(w, false);
  return env.Undefined();
}

// nlClose(fd) -> boolean: closes a socket nlOpen made, stopping its watcher first (the fd is
// then closed once libuv has let go of it). A number that is not an open socket of nlOpen (closed
// already) is left alone: false. Why not fs.closeSync: in a worker thread Node warns about
// closing an fd that fs did not open.
Napi::Value NlClose(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Usage(env, info.Length() == 1 && info[0].IsNumber(), "nlClose(fd: number)");
  int fd = info[0].As<Napi::Number>().Int32Value();
  if (Watch* w = FindWatch(env, fd)) {
    bool mine = Disown(fd);
    if (mine) w->closeFd = true;
    CloseWatch(w, false);  // a closing one closes the fd when it is done
    return Napi::Boolean::New(env, mine);
  }
  if (!Disown(fd)) return Napi::Boolean::New(env, false);
  if (close(fd) < 0 && errno != EINTR) throw ErrnoError(env, errno, "close");
  return Napi::Boolean::New(env, true);
}

// Closes what a worker's environment left open. Its watched sockets close with their watchers
// (OnEnvTeardown; the async hook is what keeps the loop turning until libuv is done).
void OnEnvCleanup(void* arg) {
  napi_env env = static_cast<napi_env>(arg);
  std::vector<int> left;
  {
    std::lock_guard<std::mutex> lock(fdsMu);
    for (auto it = ownedFds.begin(); it != ownedFds.end();) {
      if (it->second == env && !FindWatch(env, it->first)) { left.push_back(it->first); it = ownedFds.erase(it); }
      else ++it;
    }
  }
  for (int fd : left) close(fd);
}

// Refuses a sysctl key that could leave /proc/sys: absolute, or with an empty, "." or ".."
// component, or a NUL byte.
void CheckSysctlKey(Napi::Env env, const std::string& key, const char* usage) {
  bool ok = !key.empty() && key[0] != '/' && key.find('\0') == std::string::npos;
  for (size_t start = 0; ok && start <= key.size();) {
    size_t end = key.find('/', start);
    if (end == std::string::npos) end = key.size();
    std::string part = key.substr(start, end - start);
    if (part.empty() || part == "." || part == "..") ok = false;
    start = end + 1;
  }
  Usage(env, ok, usage);
}

// sysctlWrite(netnsPath|null, key, value): key like "net/ipv4/ip_forward"
Napi::Value SysctlWrite(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Usage(env, info.Length() == 3 && info[1].IsString() && info[2].IsString(),
        "sysctlWrite(netnsPath: string|null, key: string, value: string)");
  std::string ns = OptPath(info[0]);
  std::string key = info[1].As<Napi::String>().Utf8Value();
  CheckSysctlKey(env, key, "sysctlWrite: key is a path under /proc/sys such as \"net/ipv4/ip_forward\"");
  std::string path = "/proc/sys/" + key;
  std::string value = info[2].As<Napi::String>().Utf8Value();
  JobResult r = RunJobIn(ns, [&](JobResult& r) {
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
  std::string key = info[1].As<Napi::String>().Utf8Value();
  CheckSysctlKey(env, key, "sysctlRead: key is a path under /proc/sys such as \"net/ipv4/ip_forward\"");
  std::string path = "/proc/sys/" + key;
  JobResult r = RunJobIn(ns, [&](JobResult& r) {
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

// mallocTrim() -> boolean: gives the free memory of every malloc arena back to the kernel
// (glibc malloc_trim). Why: V8's compiler and GC threads malloc and free their working memory
// on their own arenas, which keep it resident in a long-lived process (~12 MB in the engine).
Napi::Value MallocTrim(const Napi::CallbackInfo& info) {
  return Napi::Boolean::New(info.Env(), malloc_trim(0) != 0);
}

// randomFill(buf) -> undefined: fills buf from the kernel's CSPRNG (getrandom(2)). Why not
// node:crypto: loading it costs the engine ~2 MiB of RSS, for a DNS forwarder's query ids.
Napi::Value RandomFill(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Usage(env, info.Length() == 1 && info[0].IsBuffer(), "randomFill(buf: Buffer)");
  auto buf = info[0].As<Napi::Buffer<uint8_t>>();
  size_t done = 0;
  while (done < buf.Length()) {
    ssize_t n = getrandom(buf.Data() + done, buf.Length() - done, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return ThrowErrno(env, errno, "getrandom");
    done += static_cast<size_t>(n);
  }
  return env.Undefined();
}

// flock(fd, exclusive) -> boolean: takes the lock if it is free, never waits (false when held).
Napi::Value Flock(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Usage(env, info.Length() == 2 && info[0].IsNumber() && info[1].IsBoolean(), "flock(fd: number, exclusive: boolean)");
  int fd = info[0].As<Napi::Number>().Int32Value();
  int op = (info[1].As<Napi::Boolean>().Value() ? LOCK_EX : LOCK_SH) | LOCK_NB;
  int rc;
  do { rc = flock(fd, op); } while (rc < 0 && errno == EINTR);
  if (rc < 0) {
    if (errno == EWOULDBLOCK) return Napi::Boolean::New(env, false);
    throw ErrnoError(env, errno, "flock");
  }
  return Napi::Boolean::New(env, true);
}

struct FlockDone {
  Napi::Promise::Deferred deferred;
  int err = 0;
  explicit FlockDone(Napi::Env env) : deferred(Napi::Promise::Deferred::New(env)) {}
};

// flockWait(fd, exclusive) -> Promise<void>: resolves once the lock is held. A free lock is taken
// at once; a held one is waited for by a thread of our own (never the JS thread or the libuv
// pool, whose four threads a few waiters would exhaust), on a dup of fd: a dup shares the open
// file, hence the lock, and cannot be reused as another file if the caller closes fd meanwhile.
Napi::Value FlockWait(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Usage(env, info.Length() == 2 && info[0].IsNumber() && info[1].IsBoolean(), "flockWait(fd: number, exclusive: boolean)");
  int fd = info[0].As<Napi::Number>().Int32Value();
  int op = info[1].As<Napi::Boolean>().Value() ? LOCK_EX : LOCK_SH;
  auto* done = new FlockDone(env);
  Napi::Promise promise = done->deferred.Promise();
  int rc;
  do { rc = flock(fd, op | LOCK_NB); } while (rc < 0 && errno == EINTR);
  if (rc == 0 || errno != EWOULDBLOCK) {
    if (rc == 0) done->deferred.Resolve(env.Undefined());
    else done->deferred.Reject(ErrnoError(env, errno, "flock").Value());
    delete done;
    return promise;
  }
  int dupfd = fcntl(fd, F_DUPFD_CLOEXEC, 0);
  if (dupfd < 0) {
    done->deferred.Reject(ErrnoError(env, errno, "fcntl").Value());
    delete done;
    return promise;
  }
  auto tsfn = Napi::ThreadSafeFunction::New(env, Napi::Function::New(env, [](const Napi::CallbackInfo&) {}), "cnikit:flock", 0, 1);
  std::thread([tsfn, dupfd, op, done]() mutable {
    int r;
    do { r = flock(dupfd, op); } while (r < 0 && errno == EINTR);
    done->err = r < 0 ? errno : 0;
    close(dupfd);
    napi_status s = tsfn.BlockingCall(done, [](Napi::Env env, Napi::Function, FlockDone* d) {
      if (d->err) d->deferred.Reject(ErrnoError(env, d->err, "flock").Value());
      else d->deferred.Resolve(env.Undefined());
      delete d;
    });
    // napi_closing: the environment is gone; nobody waits for the promise any more.
    if (s == napi_ok) tsfn.Release();
    else delete done;
  }).detach();
  return promise;
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

// --- For the engine (engine/server.ts): who is on the other end of a unix socket. ---

// peerCred(fd) -> {pid, uid, gid} of the process that connected (SO_PEERCRED; Node has no API).
Napi::Value PeerCred(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Usage(env, info.Length() == 1 && info[0].IsNumber(), "peerCred(fd: number)");
  struct ucred cred;
  socklen_t len = sizeof(cred);
  if (getsockopt(info[0].As<Napi::Number>().Int32Value(), SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0) {
    throw ErrnoError(env, errno, "getsockopt", "SO_PEERCRED");
  }
  Napi::Object o = Napi::Object::New(env);
  o.Set("pid", Napi::Number::New(env, cred.pid));
  o.Set("uid", Napi::Number::New(env, cred.uid));
  o.Set("gid", Napi::Number::New(env, cred.gid));
  return o;
}

// ---- Sockets bound inside another namespace (separate from the netlink functions above) ----
//
// netnsSockets(netnsPath|null, specs) -> { netnsIno, fds }: joins the namespace on a short-lived
// thread (RunInNetns; null = stay in ours, on this thread), creates one socket per spec there, binds each to its address and port, and
// returns their fds in spec order with the inode of the namespace actually joined (so the caller
// can tell the path still names the namespace it expects). A spec is { type: "udp" | "tcp",
// address: IPv4 or IPv6 literal, port, freebind?: boolean }. Nothing listens yet: the caller
// hands each fd to its event loop (Node's dgram bind({fd}) / net listen({fd})), which makes the
// fd non-blocking and calls listen(). All or nothing: on any failure every socket made is closed.
// Used by the DNS responder for 127.0.0.11:53 inside containers, and by dnsname's CHECK probe.
struct SocketSpec {
  bool stream = false;
  std::string address;
  int port = 0;
  bool freebind = false;
};

Napi::Value NetnsSockets(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const char* usage = "netnsSockets(netnsPath: string, specs: {type: 'udp'|'tcp', address: string, port: number, freebind?: boolean}[])";
  Usage(env, info.Length() == 2 && (info[0].IsString() || info[0].IsNull()) && info[1].IsArray(), usage);
  std::string ns = OptPath(info[0]);
  Napi::Array arr = info[1].As<Napi::Array>();
  std::vector<SocketSpec> specs;
  for (uint32_t i = 0; i < arr.Length(); i++) {
    Napi::Value v = arr.Get(i);
    Usage(env, v.IsObject(), usage);
    Napi::Object o = v.As<Napi::Object>();
    Usage(env, o.Get("type").IsString() && o.Get("address").IsString() && o.Get("port").IsNumber(), usage);
    SocketSpec s;
    std::string type = o.Get("type").As<Napi::String>().Utf8Value();
    Usage(env, type == "udp" || type == "tcp", usage);
    s.stream = type == "tcp";
    s.address = o.Get("address").As<Napi::String>().Utf8Value();
    s.port = o.Get("port").As<Napi::Number>().Int32Value();
    Usage(env, s.port >= 0 && s.port <= 65535, usage);
    s.freebind = o.Get("freebind").ToBoolean();
    specs.push_back(s);
  }
  std::vector<int> fds;
  double ino = 0;
  std::string failed;
  auto job = [&](JobResult& r) {
    if (ns.empty()) {
      // Our own namespace: no thread, no setns (which would need CAP_SYS_ADMIN even for it).
      struct stat st;
      if (stat("/proc/thread-self/ns/net", &st) < 0) { r.err = errno; r.syscall = "stat"; failed = "/proc/thread-self/ns/net"; return; }
      ino = static_cast<double>(st.st_ino);
    } else {
      int nsfd = open(ns.c_str(), O_RDONLY | O_CLOEXEC);
      if (nsfd < 0) { r.err = errno; r.syscall = "open"; failed = ns; return; }
      struct stat st;
      if (fstat(nsfd, &st) < 0) { r.err = errno; r.syscall = "fstat"; failed = ns; close(nsfd); return; }
      ino = static_cast<double>(st.st_ino);
      // Why: setns on this thread only (it ends right after); the sockets keep the namespace they
      // are created in, which is what the caller wants and also why it must close them in time:
      // an open socket keeps its namespace alive.
      if (setns(nsfd, CLONE_NEWNET) < 0) { r.err = errno; r.syscall = "setns"; failed = ns; close(nsfd); return; }
      close(nsfd);
    }
    for (const SocketSpec& s : specs) {
      struct sockaddr_storage sa;
      memset(&sa, 0, sizeof(sa));
      socklen_t len;
      int family;
      auto* v4 = reinterpret_cast<struct sockaddr_in*>(&sa);
      auto* v6 = reinterpret_cast<struct sockaddr_in6*>(&sa);
      if (inet_pton(AF_INET, s.address.c_str(), &v4->sin_addr) == 1) {
        family = AF_INET; v4->sin_family = AF_INET; v4->sin_port = htons(s.port); len = sizeof(*v4);
      } else if (inet_pton(AF_INET6, s.address.c_str(), &v6->sin6_addr) == 1) {
        family = AF_INET6; v6->sin6_family = AF_INET6; v6->sin6_port = htons(s.port); len = sizeof(*v6);
      } else {
        r.err = EINVAL; r.syscall = "inet_pton"; failed = s.address; return;
      }
      int fd = socket(family, (s.stream ? SOCK_STREAM : SOCK_DGRAM) | SOCK_CLOEXEC, 0);
      if (fd < 0) { r.err = errno; r.syscall = "socket"; failed = s.address; return; }
      fds.push_back(fd);
      int one = 1;
      // Why: what libuv does for every TCP bind, so a restart rebinds past TIME_WAIT.
      if (s.stream) setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
      if (family == AF_INET6) setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
      if (s.freebind) {
        if (family == AF_INET) setsockopt(fd, IPPROTO_IP, IP_FREEBIND, &one, sizeof(one));
        else setsockopt(fd, IPPROTO_IPV6, IPV6_FREEBIND, &one, sizeof(one));
      }
      if (bind(fd, reinterpret_cast<struct sockaddr*>(&sa), len) < 0) {
        r.err = errno; r.syscall = "bind"; failed = s.address + ":" + std::to_string(s.port); return;
      }
    }
  };
  JobResult r;
  if (ns.empty()) job(r);
  else r = RunInNetns("", job);
  if (r.err) {
    for (int fd : fds) close(fd);
    throw ErrnoError(env, r.err, r.syscall, failed);
  }
  Napi::Object out = Napi::Object::New(env);
  out.Set("netnsIno", Napi::Number::New(env, ino));
  Napi::Array list = Napi::Array::New(env, fds.size());
  for (size_t i = 0; i < fds.size(); i++) list.Set(static_cast<uint32_t>(i), Napi::Number::New(env, fds[i]));
  out.Set("fds", list);
  return out;
}

// ---- Batched UDP I/O (separate from the netlink and namespace functions above) ----
//
// udpRecvBatch(fd, buf, slot, meta) -> count and udpSendBatch(fd, buf, meta, count) -> sent:
// recvmmsg/sendmmsg on a non-blocking UDP socket (MSG_DONTWAIT), so that a server handling
// many small datagrams pays one system call per batch instead of two per datagram. No policy:
// bytes and addresses in, bytes and addresses out. `meta` holds one 32-byte record per message,
// little endian: u32 offset in buf, u32 length, u16 family (AF_INET 2 / AF_INET6 10), u16 port,
// u32 IPv6 scope id, 16 address bytes (IPv4 in the first 4). Receiving fills message i into
// buf[i*slot, (i+1)*slot) and its record (length 0xffffffff when it did not fit the slot), and
// returns 0 when nothing is queued. Sending stops at the first message the kernel refuses and
// returns how many went; when the very first one fails it returns -errno (EAGAIN: the socket's
// buffer is full), so the caller can skip or retry it.
constexpr size_t kMetaSize = 32;
constexpr unsigned kMaxBatch = 256;

void WriteMeta(uint8_t* m, uint32_t offset, uint32_t length, const struct sockaddr_storage& sa) {
  memset(m, 0, kMetaSize);
  memcpy(m, &offset, 4);
  memcpy(m + 4, &length, 4);
  uint16_t family = sa.ss_family;
  memcpy(m + 8, &family, 2);
  if (sa.ss_family == AF_INET) {
    auto* v4 = reinterpret_cast<const struct sockaddr_in*>(&sa);
    uint16_t port = ntohs(v4->sin_port);
    memcpy(m + 10, &port, 2);
    memcpy(m + 16, &v4->sin_addr, 4);
  } else if (sa.ss_family == AF_INET6) {
    auto* v6 = reinterpret_cast<const struct sockaddr_in6*>(&sa);
    uint16_t port = ntohs(v6->sin6_port);
    memcpy(m + 10, &port, 2);
    memcpy(m + 12, &v6->sin6_scope_id, 4);
    memcpy(m + 16, &v6->sin6_addr, 16);
  }
}

socklen_t ReadMeta(const uint8_t* m, uint32_t* offset, uint32_t* length, struct sockaddr_storage* sa) {
  memcpy(offset, m, 4);
  memcpy(length, m + 4, 4);
  uint16_t family, port;
  memcpy(&family, m + 8, 2);
  memcpy(&port, m + 10, 2);
  memset(sa, 0, sizeof(*sa));
  if (family == AF_INET) {
    auto* v4 = reinterpret_cast<struct sockaddr_in*>(sa);
    v4->sin_family = AF_INET;
    v4->sin_port = htons(port);
    memcpy(&v4->sin_addr, m + 16, 4);
    return sizeof(*v4);
  }
  auto* v6 = reinterpret_cast<struct sockaddr_in6*>(sa);
  v6->sin6_family = AF_INET6;
  v6->sin6_port = htons(port);
  memcpy(&v6->sin6_scope_id, m + 12, 4);
  memcpy(&v6->sin6_addr, m + 16, 16);
  return sizeof(*v6);
}

Napi::Value UdpRecvBatch(Napi::CallbackInfo const& info) {
  Napi::Env env = info.Env();
  Usage(env, info.Length() == 4 && info[0].IsNumber() && info[1].IsBuffer() && info[2].IsNumber() && info[3].IsBuffer(),
        "udpRecvBatch(fd: number, buf: Buffer, slot: number, meta: Buffer)");
  int fd = info[0].As<Napi::Number>().Int32Value();
  auto buf = info[1].As<Napi::Buffer<uint8_t>>();
  size_t slot = info[2].As<Napi::Number>().Uint32Value();
  auto meta = info[3].As<Napi::Buffer<uint8_t>>();
  Usage(env, slot > 0, "udpRecvBatch: slot must be > 0");
  unsigned n = static_cast<unsigned>(std::min<size_t>({buf.Length() / slot, meta.Length() / kMetaSize, kMaxBatch}));
  if (n == 0) return Napi::Number::New(env, 0);
  std::vector<struct mmsghdr> msgs(n);
  std::vector<struct iovec> iov(n);
  std::vector<struct sockaddr_storage> addrs(n);
  for (unsigned i = 0; i < n; i++) {
    iov[i].iov_base = buf.Data() + i * slot;
    iov[i].iov_len = slot;
    memset(&msgs[i], 0, sizeof(msgs[i]));
    msgs[i].msg_hdr.msg_iov = &iov[i];
    msgs[i].msg_hdr.msg_iovlen = 1;
    msgs[i].msg_hdr.msg_name = &addrs[i];
    msgs[i].msg_hdr.msg_namelen = sizeof(addrs[i]);
  }
  int got;
  do { got = recvmmsg(fd, msgs.data(), n, MSG_DONTWAIT, nullptr); } while (got < 0 && errno == EINTR);
  if (got < 0) {
    if (errno == EAGAIN || errno == EWOULDBLOCK) return Napi::Number::New(env, 0);
    throw ErrnoError(env, errno, "recvmmsg");
  }
  for (int i = 0; i < got; i++) {
    uint32_t len = (msgs[i].msg_hdr.msg_flags & MSG_TRUNC) ? 0xffffffffu : msgs[i].msg_len;
    WriteMeta(meta.Data() + i * kMetaSize, static_cast<uint32_t>(i * slot), len, addrs[i]);
  }
  return Napi::Number::New(env, got);
}

Napi::Value UdpSendBatch(Napi::CallbackInfo const& info) {
  Napi::Env env = info.Env();
  Usage(env, info.Length() == 4 && info[0].IsNumber() && info[1].IsBuffer() && info[2].IsBuffer() && info[3].IsNumber(),
        "udpSendBatch(fd: number, buf: Buffer, meta: Buffer, count: number)");
  int fd = info[0].As<Napi::Number>().Int32Value();
  auto buf = info[1].As<Napi::Buffer<uint8_t>>();
  auto meta = info[2].As<Napi::Buffer<uint8_t>>();
  unsigned n = info[3].As<Napi::Number>().Uint32Value();
  Usage(env, n <= kMaxBatch && n * kMetaSize <= meta.Length(), "udpSendBatch: count exceeds the meta records (256 at most)");
  if (n == 0) return Napi::Number::New(env, 0);
  std::vector<struct mmsghdr> msgs(n);
  std::vector<struct iovec> iov(n);
  std::vector<struct sockaddr_storage> addrs(n);
  for (unsigned i = 0; i < n; i++) {
    uint32_t offset, length;
    socklen_t alen = ReadMeta(meta.Data() + i * kMetaSize, &offset, &length, &addrs[i]);
    Usage(env, static_cast<size_t>(offset) + length <= buf.Length(), "udpSendBatch: a message lies outside buf");
    iov[i].iov_base = buf.Data() + offset;
    iov[i].iov_len = length;
    memset(&msgs[i], 0, sizeof(msgs[i]));
    msgs[i].msg_hdr.msg_iov = &iov[i];
    msgs[i].msg_hdr.msg_iovlen = 1;
    msgs[i].msg_hdr.msg_name = &addrs[i];
    msgs[i].msg_hdr.msg_namelen = alen;
  }
  int sent;
  do { sent = sendmmsg(fd, msgs.data(), n, MSG_DONTWAIT); } while (sent < 0 && errno == EINTR);
  return Napi::Number::New(env, sent >= 0 ? sent : -errno);
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  napi_add_env_cleanup_hook(env, OnEnvCleanup, static_cast<napi_env>(env));
  exports.Set("nlOpen", Napi::Function::New(env, NlOpen));
  exports.Set("nlSend", Napi::Function::New(env, NlSend));
  exports.Set("nlSendAsync", Napi::Function::New(env, NlSendAsync));
  exports.Set("nlRecv", Napi::Function::New(env, NlRecv));
  exports.Set("nlClose", Napi::Function::New(env, NlClose));
  exports.Set("nlWatch", Napi::Function::New(env, NlWatch));
  exports.Set("nlUnwatch", Napi::Function::New(env, NlUnwatch));
  exports.Set("sysctlWrite", Napi::Function::New(env, SysctlWrite));
  exports.Set("sysctlRead", Napi::Function::New(env, SysctlRead));
  exports.Set("flock", Napi::Function::New(env, Flock));
  exports.Set("mallocTrim", Napi::Function::New(env, MallocTrim));
  exports.Set("randomFill", Napi::Function::New(env, RandomFill));
  exports.Set("flockWait", Napi::Function::New(env, FlockWait));
  exports.Set("netnsCreate", Napi::Function::New(env, NetnsCreate));
  exports.Set("netnsDelete", Napi::Function::New(env, NetnsDelete));
  exports.Set("execInNetns", Napi::Function::New(env, ExecInNetns));
  exports.Set("peerCred", Napi::Function::New(env, PeerCred));
  exports.Set("netnsSockets", Napi::Function::New(env, NetnsSockets));
  exports.Set("udpRecvBatch", Napi::Function::New(env, UdpRecvBatch));
  exports.Set("udpSendBatch", Napi::Function::New(env, UdpSendBatch));
  return exports;
}

}  // namespace

NODE_API_MODULE(netns, Init)
