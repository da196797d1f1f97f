/* rt_trace.c: writes the trace file (include/ftsan_trace.h) with write(2) from a buffer
 * guarded by a spin lock; records are rare (modules, threads, findings, stats), so one lock
 * is fine here, and the access fast path never comes here. */
#include "rt_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define TRACE_BUF 65536

static ftsan_spin trace_lock;
static int trace_fd = -1;               /* guarded by trace_lock; written at open */
static char trace_buf[TRACE_BUF];       /* guarded by trace_lock */
static size_t trace_len;                /* guarded by trace_lock */

static void write_all(int fd, const char *p, size_t n) {
  while (n > 0) {
    ssize_t w = write(fd, p, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      return;
    }
    p += w;
    n -= (size_t)w;
  }
}

static void flush_locked(void) {
  if (trace_fd >= 0 && trace_len) write_all(trace_fd, trace_buf, trace_len);
  trace_len = 0;
}

static void mkdir_p(const char *dir) {
  char path[PATH_MAX];
  size_t n = strlen(dir);
  if (n >= sizeof path) return;
  memcpy(path, dir, n + 1);
  for (size_t i = 1; i < n; i++)
    if (path[i] == '/') {
      path[i] = 0;
      mkdir(path, 0777);
      path[i] = '/';
    }
  mkdir(path, 0777);
}

int ftsan__trace_active(void) { return trace_fd >= 0; }

int ftsan__trace_open(void) {
  const char *dir = ftsan__opt.out;
  if (!dir || !*dir) return 0;
  mkdir_p(dir);
  char path[PATH_MAX];
  snprintf(path, sizeof path, "%s/ftsan.%d.trace", dir, (int)getpid());
  int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
  if (fd < 0) {
    ftsan__warn(FTSAN_WARN_GENERIC, "cannot create trace file %s: %s; no trace is written", path,
                strerror(errno));
    return -1;
  }
  struct ftsan_trace_header h;
  memset(&h, 0, sizeof h);
  memcpy(h.magic, FTSAN_TRACE_MAGIC, 8);
  h.major = FTSAN_TRACE_MAJOR;
  h.minor = FTSAN_TRACE_MINOR;
  h.pointer_size = sizeof(void *);
  h.byte_order = FTSAN_TRACE_LITTLE_ENDIAN;
  h.header_size = sizeof h;
  h.pid = (uint32_t)getpid();
  h.abi_version = FTSAN_ABI_VERSION;
  h.start_ns = ftsan__now_ns();
  ftsan__spin_lock(&trace_lock);
  trace_fd = fd;
  trace_len = 0;
  memcpy(trace_buf, &h, sizeof h);
  trace_len = sizeof h;
  ftsan__spin_unlock(&trace_lock);
  return 0;
}

void ftsan__trace_write(const void *rec, uint32_t size) {
  if (trace_fd < 0) return;
  ftsan__spin_lock(&trace_lock);
  if (trace_len + size > TRACE_BUF) flush_locked();
  if (size > TRACE_BUF)
    write_all(trace_fd, rec, size);
  else {
    memcpy(trace_buf + trace_len, rec, size);
    trace_len += size;
  }
  ftsan__spin_unlock(&trace_lock);
}

void ftsan__trace_flush(void) {
  /* Called from fatal-signal handlers too: if the lock is held by the interrupted code,
   * give up rather than deadlock; the records in the buffer are lost, the file stays
   * readable (records are written whole). */
  if (trace_fd < 0) return;
  for (int i = 0; i < 1000; i++) {
    if (!__atomic_exchange_n(&trace_lock.locked, 1, __ATOMIC_ACQUIRE)) {
      flush_locked();
      ftsan__spin_unlock(&trace_lock);
      return;
    }
  }
}

/* In a forked child: the inherited buffer belongs to the parent's file (whose offset the
 * child shares), so it is dropped, not written; the lock may have been held by a thread that
 * does not exist in the child. */
void ftsan__trace_forget(void) {
  trace_lock.locked = 0;
  trace_len = 0;
  if (trace_fd >= 0) close(trace_fd);
  trace_fd = -1;
}

void ftsan__trace_close(void) {
  ftsan__spin_lock(&trace_lock);
  flush_locked();
  if (trace_fd >= 0) close(trace_fd);
  trace_fd = -1;
  ftsan__spin_unlock(&trace_lock);
}
