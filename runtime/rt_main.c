/* rt_main.c: runtime start-up and shutdown: the library constructor, the ABI handshake with
 * instrumented modules (__ftsan_init), warnings, the end of the trace at exit, on fatal
 * signals and in forked children. */
#define _GNU_SOURCE 1
#include "rt_clock.h"
#include "rt_contention.h"
#include "rt_shadow.h"

#include <dlfcn.h>
#include <fcntl.h>
#include <sys/syscall.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#ifndef FTSAN_VERSION_STRING
#define FTSAN_VERSION_STRING "0"
#endif

volatile int ftsan__enabled;       /* set once at init, cleared once on a fatal mismatch */
int ftsan__race_on;                /* written once at init (mode) */
int ftsan__initialized;            /* written once by ftsan__init_once */
static int init_state;             /* 0 none, 1 running, 2 done; atomic */
static uint32_t warned_codes;      /* atomic bit set: each warning code is printed once */

uint64_t ftsan__now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

int ftsan__format(char *buf, size_t n, const char *fmt, va_list ap) {
  return vsnprintf(buf, n, fmt, ap);
}

void ftsan__log(const char *fmt, ...) {
  char buf[1024];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(buf, sizeof buf - 1, fmt, ap);
  va_end(ap);
  if (n < 0) return;
  if ((size_t)n > sizeof buf - 2) n = sizeof buf - 2;
  buf[n++] = '\n';
  if (write(2, buf, (size_t)n) < 0) { /* nothing to do */ }
}

void ftsan__warn(uint32_t code, const char *fmt, ...) {
  char msg[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  /* GENERIC warnings are distinct messages; the others are printed once per code. */
  if (code != FTSAN_WARN_GENERIC && code < 32 &&
      (__atomic_fetch_or(&warned_codes, 1u << code, __ATOMIC_RELAXED) & (1u << code)))
    return;
  ftsan__log("ftsan: warning: %s", msg);
  size_t len = strlen(msg) + 1;
  char buf[sizeof(struct ftsan_rec_warning) + sizeof msg + 8];
  uint32_t size = (uint32_t)((sizeof(struct ftsan_rec_warning) + len + 7) & ~7u);
  memset(buf, 0, size);
  struct ftsan_rec_warning *r = (struct ftsan_rec_warning *)buf;
  r->h.kind = FTSAN_REC_WARNING;
  r->h.size = size;
  r->code = code;
  r->msg_len = (uint32_t)len;
  memcpy(buf + sizeof *r, msg, len);
  ftsan__trace_write(buf, size);
}

static void write_process_record(void) {
  char exe[4096];
  ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
  exe[n > 0 ? n : 0] = 0;
  char cmd[4096];
  size_t cmd_len = 0;
  int fd = open("/proc/self/cmdline", O_RDONLY | O_CLOEXEC);
  if (fd >= 0) {
    ssize_t r = read(fd, cmd, sizeof cmd - 1);
    close(fd);
    if (r > 0) {
      cmd_len = (size_t)r;
      for (size_t i = 0; i + 1 < cmd_len; i++)
        if (cmd[i] == 0) cmd[i] = ' ';
    }
  }
  cmd[cmd_len] = 0;
  size_t exe_len = strlen(exe) + 1, cmdline_len = strlen(cmd) + 1;
  static char buf[sizeof(struct ftsan_rec_process) + 8192 + 8];
  uint32_t size = (uint32_t)((sizeof(struct ftsan_rec_process) + exe_len + cmdline_len + 7) & ~7u);
  memset(buf, 0, size);
  struct ftsan_rec_process *r = (struct ftsan_rec_process *)buf;
  r->h.kind = FTSAN_REC_PROCESS;
  r->h.size = size;
  r->ppid = (uint32_t)getppid();
  r->python_version = ftsan__python_version();
  r->flags = (ftsan__python_free_threaded() ? FTSAN_PROC_FREE_THREADED : 0) |
             (ftsan__enabled ? 0 : FTSAN_PROC_ANALYSIS_OFF);
  r->exe_len = (uint32_t)exe_len;
  memcpy(buf + sizeof *r, exe, exe_len);
  memcpy(buf + sizeof *r + exe_len, cmd, cmdline_len);
  ftsan__trace_write(buf, size);
}

static void write_end_record(void) {
  int gil = ftsan__python_gil_enabled();
  if (gil == 1 && ftsan__python_free_threaded())
    ftsan__warn(FTSAN_WARN_GIL_ENABLED,
                "the GIL was enabled in this free-threaded process (a module without "
                "Py_mod_gil = Py_MOD_GIL_NOT_USED was imported?): races may be hidden");
  struct ftsan_rec_end r;
  memset(&r, 0, sizeof r);
  r.h.kind = FTSAN_REC_END;
  r.h.size = sizeof r;
  r.end_ns = ftsan__now_ns();
  r.threads = __atomic_load_n(&ftsan__thread_count, __ATOMIC_RELAXED);
  r.findings = ftsan__findings();
  ftsan__trace_write(&r, sizeof r);
}

static int shut_down; /* atomic: 0 running, 1 ending the trace, 2 ended */

/* Ends the trace once. A second caller (another thread exiting or halting at the same time)
 * waits until the first has finished, so that nobody leaves the process mid-write. */
static void at_exit(void) {
  int expected = 0;
  if (!__atomic_compare_exchange_n(&shut_down, &expected, 1, 0, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) {
    ftsan_thread *self = ftsan__cur;
    if (self && self->finished == 0 && expected == 1)
      while (__atomic_load_n(&shut_down, __ATOMIC_ACQUIRE) != 2) usleep(1000);
    return;
  }
  ftsan_thread *t = ftsan__cur;
  if (t) t->ignore++;
  ftsan__modules_scan();
  ftsan__threads_flush_all();
  write_end_record();
  ftsan__trace_close();
  __atomic_store_n(&shut_down, 2, __ATOMIC_RELEASE);
  if (ftsan__opt.verbose) ftsan__log("ftsan: runtime shut down");
}

/* _exit skips atexit handlers; forked children (multiprocessing, os.fork + os._exit) end
 * this way, and their traces must still be complete. */
static pid_t owner_pid; /* the process whose trace this runtime writes; set at init and fork */

FTSAN_EXPORT void _exit(int status) {
  static void (*real_exit)(int);
  if (!real_exit) real_exit = (void (*)(int))dlsym(RTLD_NEXT, "_exit");
  /* A vfork child (subprocess's fast path: posix_spawn, _posixsubprocess) shares the
   * parent's memory and runs no fork handlers; when its exec fails it calls _exit. Ending
   * "the" trace there would end the parent's. */
  if (getpid() == owner_pid) at_exit();
  if (real_exit) real_exit(status);
  syscall(SYS_exit_group, status);
  __builtin_unreachable();
}

/* halt_on_error: end the trace properly, then leave at once. */
void ftsan__halt(int code) {
  static int halting;
  if (__atomic_exchange_n(&halting, 1, __ATOMIC_ACQ_REL))
    for (;;) pause(); /* another thread is already ending the process */
  at_exit();
  _exit(code);
}

/* Fatal signals: flush what is buffered so the trace stays readable (without an END record,
 * which tells the reader the process did not finish), then let the default action happen. */
static const int fatal_signals[] = {SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGABRT};
static struct sigaction old_actions[sizeof fatal_signals / sizeof fatal_signals[0]];

static void on_fatal_signal(int sig, siginfo_t *info, void *ctx) {
  ftsan__trace_flush();
  for (size_t i = 0; i < sizeof fatal_signals / sizeof fatal_signals[0]; i++)
    if (fatal_signals[i] == sig) {
      struct sigaction *old = &old_actions[i];
      if ((old->sa_flags & SA_SIGINFO) && old->sa_sigaction) {
        old->sa_sigaction(sig, info, ctx);
        return;
      }
      if (old->sa_handler != SIG_DFL && old->sa_handler != SIG_IGN && old->sa_handler) {
        old->sa_handler(sig);
        return;
      }
    }
  signal(sig, SIG_DFL);
  raise(sig);
}

static void install_signal_handlers(void) {
  for (size_t i = 0; i < sizeof fatal_signals / sizeof fatal_signals[0]; i++) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_fatal_signal;
    sa.sa_flags = SA_SIGINFO | SA_ONSTACK | SA_NODEFER;
    sigemptyset(&sa.sa_mask);
    sigaction(fatal_signals[i], &sa, &old_actions[i]);
  }
}

/* A forked child gets its own trace file; it inherits the parent's module map, which it
 * writes again, and only the forking thread survives. */
static void before_fork(void) { ftsan__trace_flush(); }

static void after_fork_child(void) {
  owner_pid = getpid();
  ftsan__alloc_after_fork();
  ftsan__clock_after_fork();
  ftsan__heap_after_fork();
  ftsan__contention_after_fork();
  ftsan__stats_after_fork();
  ftsan__pysite_after_fork();
  ftsan__trace_forget();
  if (!ftsan__opt.out || !*ftsan__opt.out) return;
  if (ftsan__trace_open() == 0) {
    write_process_record();
    ftsan__modules_rewrite_all();
    ftsan__trace_flush();
  }
}

void ftsan__init_once(void) {
  int expected = 0;
  if (!__atomic_compare_exchange_n(&init_state, &expected, 1, 0, __ATOMIC_ACQ_REL,
                                   __ATOMIC_ACQUIRE)) {
    while (__atomic_load_n(&init_state, __ATOMIC_ACQUIRE) != 2) __builtin_ia32_pause();
    return;
  }
  owner_pid = getpid();
  ftsan__options_init();
  ftsan__python_init();
  ftsan__race_on = 1;
  if (!strcmp(ftsan__opt.mode, "contention")) {
    ftsan__race_on = 0;
  } else if (strcmp(ftsan__opt.mode, "race") != 0) {
    ftsan__log("ftsan: warning: unknown mode '%s' (race or contention); using race", ftsan__opt.mode);
  }
  ftsan__contention_on = 1;
  ftsan__contention_init();
  ftsan__trace_open();
  if (ftsan__race_on && (ftsan__shadow_init() != 0 || ftsan__clock_init() != 0)) {
    ftsan__warn(FTSAN_WARN_GENERIC, "cannot reserve shadow memory; race detection is off");
    ftsan__race_on = 0;
  }
  ftsan__enabled = 1;
  write_process_record();
  ftsan__threads_init();
  ftsan__capi_init();
  ftsan__hooks_init();
  ftsan__modules_scan();
  if (ftsan__python_version() == 0)
    ftsan__warn(FTSAN_WARN_NOT_PYTHON, "the host program is not python (no _PyRuntime); "
                "Python-aware features are off");
  else if (!ftsan__python_free_threaded())
    ftsan__warn(FTSAN_WARN_NOT_PYTHON, "python %u.%u is not a free-threaded build: the GIL "
                "serializes threads and hides races; use python3.13t or python3.14t",
                (ftsan__python_version() >> 24) & 0xff, (ftsan__python_version() >> 16) & 0xff);
  /* What is known at start goes to disk now: a process killed with SIGKILL still leaves a
   * readable (truncated) trace. */
  ftsan__trace_flush();
  install_signal_handlers();
  pthread_atfork(before_fork, NULL, after_fork_child);
  atexit(at_exit);
  ftsan__initialized = 1;
  __atomic_store_n(&init_state, 2, __ATOMIC_RELEASE);
  if (ftsan__opt.verbose) ftsan__log("ftsan: runtime %s loaded (abi %u)", FTSAN_VERSION_STRING, FTSAN_ABI_VERSION);
}

__attribute__((constructor(101))) static void ftsan_ctor(void) { ftsan__init_once(); }
__attribute__((destructor)) static void ftsan_dtor(void) { at_exit(); }

FTSAN_EXPORT void __ftsan_init(uint32_t abi_version) {
  ftsan__init_once();
  if (abi_version != FTSAN_ABI_VERSION) {
    ftsan__warn(FTSAN_WARN_ABI_MISMATCH,
                "an instrumented module speaks runtime ABI %u but this runtime speaks %u; "
                "rebuild the extension with this ftsan-cc. Analysis is off",
                abi_version, FTSAN_ABI_VERSION);
    ftsan__enabled = 0;
    ftsan__race_on = 0;
    ftsan__contention_on = 0;
    return;
  }
  ftsan__modules_mark_instrumented(__builtin_return_address(0));
}

/* Exposed so tests and tools can ask whether the runtime is loaded and analysing. */
FTSAN_EXPORT int ftsan_runtime_enabled(void) { return ftsan__enabled; }
