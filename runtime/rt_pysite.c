/* rt_pysite.c: Python source lines as small ids: a (code object, bytecode offset) pair is
 * resolved once, in the process while its thread runs it, to file, qualified name and line,
 * written to the trace as a PYSITE record, and named by its id from then on (in REFCOUNT and
 * LOCK entries, and in the Python stacks of race reports). */
#include "rt_internal.h"

#include <string.h>

#define TABLE (1u << 15)

static ftsan_spin lock;
/* key (code ^ offset << 48), id, identity of the code object; guarded by lock */
static uint64_t (*table)[3];
static uint64_t next_id = 1; /* guarded by lock */

static uint64_t hash(uint64_t a, uint64_t b) {
  uint64_t h = a * 0x9E3779B97F4A7C15ull ^ (b + 0x632BE59BD9B4E019ull) * 0xC2B2AE3D27D4EB4Full;
  return h ^ (h >> 29);
}

/* A code object's address is reused once it is freed (a module's code after import, a
 * lambda): an entry counts only if the code object there still has the same filename and
 * qualified name objects, else the line is resolved again under a new id. */
uint64_t ftsan__pysite(uintptr_t code, int offset) {
  uint64_t id = 0;
  int fresh = 0;
  uint64_t key = (uint64_t)code ^ ((uint64_t)(uint32_t)offset << 48);
  uint64_t ident = ftsan__python_code_ident(code);
  ftsan__spin_lock(&lock);
  if (!table) table = ftsan__map(sizeof(uint64_t[3]) * TABLE);
  if (table) {
    for (uint32_t i = 0; i < 64; i++) {
      uint64_t *slot = table[(hash(code, (uint64_t)offset) + i) & (TABLE - 1)];
      if (slot[0] == key && slot[2] == ident) {
        id = slot[1];
        break;
      }
      if (slot[0] == 0 || slot[0] == key) { /* empty, or the same address's stale entry */
        slot[0] = key;
        slot[1] = id = next_id++;
        slot[2] = ident;
        fresh = 1;
        break;
      }
    }
  }
  ftsan__spin_unlock(&lock);
  if (!fresh) return id;
  char file[512], func[256];
  int line = 0;
  if (!ftsan__python_resolve(code, offset, file, sizeof file, func, sizeof func, &line)) return id;
  size_t fl = strlen(file) + 1, nl = strlen(func) + 1;
  char buf[sizeof(struct ftsan_rec_pysite) + 512 + 256 + 8];
  uint32_t size = (uint32_t)((sizeof(struct ftsan_rec_pysite) + fl + nl + 7) & ~7u);
  memset(buf, 0, size);
  struct ftsan_rec_pysite *r = (struct ftsan_rec_pysite *)buf;
  r->h.kind = FTSAN_REC_PYSITE;
  r->h.size = size;
  r->id = id;
  r->line = (uint32_t)(line > 0 ? line : 0);
  r->file_len = (uint32_t)fl;
  r->func_len = (uint32_t)nl;
  memcpy(buf + sizeof *r, file, fl);
  memcpy(buf + sizeof *r + fl, func, nl);
  ftsan__trace_write(buf, size);
  return id;
}

uint32_t ftsan__python_stack_ids(uint64_t *ids, uint32_t max) {
  uintptr_t codes[64];
  int offsets[64];
  if (max > 64) max = 64;
  int n = ftsan__python_stack(codes, offsets, (int)max);
  uint32_t k = 0;
  for (int i = 0; i < n; i++) {
    uint64_t id = ftsan__pysite(codes[i], offsets[i]);
    if (id) ids[k++] = id;
  }
  return k;
}

void ftsan__pysite_after_fork(void) { lock.locked = 0; }
