/* engine/base/base.h - the bottom layer every ember module stands on: errors, allocation
 * (hookable, so tests can fail the Nth allocation), byte slices and growable buffers,
 * an arena, refcounted buffers, logging, checksums, hashing, little-endian loads, random
 * numbers, clocks and atomic file writes.
 *
 * THREADS: every function here may be called from any thread, except those marked
 * "before threads start" (log sink, test allocation hooks).
 * OWNERSHIP: stated per function; `_new`/`_free`, `_init`/`_destroy`, `_ref`/`_unref` follow
 * STYLE.md section 3. */
#ifndef EMBER_BASE_H
#define EMBER_BASE_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#if defined(__GNUC__)
#define EM_PRINTF(a, b) __attribute__((format(printf, a, b)))
#define EM_NORETURN __attribute__((noreturn))
#define EM_LIKELY(x) __builtin_expect(!!(x), 1)
#define EM_UNLIKELY(x) __builtin_expect(!!(x), 0)
#else
#define EM_PRINTF(a, b)
#define EM_NORETURN
#define EM_LIKELY(x) (x)
#define EM_UNLIKELY(x) (x)
#endif

/* ---------------------------------------------------------------- errors */

/* One table generates the enum, em_strerror() and em_errname(). Codes are negative. */
#define EM_ERROR_TABLE(X)                                                   \
    X(ENOMEM, -1, "out of memory")                                          \
    X(EIO, -2, "input/output error")                                        \
    X(ECORRUPT, -3, "corrupt or malformed data")                            \
    X(EPROTO, -4, "peer broke the protocol")                                \
    X(EFETCH, -5, "shuffle block unavailable")                              \
    X(EPLAN, -6, "invalid plan")                                            \
    X(EINVAL, -7, "invalid argument")                                       \
    X(ENOTFOUND, -8, "not found")                                           \
    X(ENOSPC, -9, "no space left")                                          \
    X(ETASK, -10, "task failed")                                            \
    X(ECANCELED, -11, "canceled")                                           \
    X(EAUTH, -12, "authentication failed")                                  \
    X(ETIMEDOUT, -13, "timed out")                                          \
    X(EACCES, -14, "permission denied")

enum em_errcode {
    EM_OK = 0,
#define EM__ERR_ENUM(name, val, msg) EM_##name = (val),
    EM_ERROR_TABLE(EM__ERR_ENUM)
#undef EM__ERR_ENUM
};

#define EM_ERR_MSG_MAX 256

/* A call's error report: a code and a message naming file/line/frame and the reason.
 * Fixed size, so reporting never allocates. Caller-owned, usually on the stack. */
typedef struct em_err {
    int code;                  /* 0 or a negative EM_E* */
    char msg[EM_ERR_MSG_MAX];  /* NUL-terminated, "" when code == 0 */
} em_err;

#define EM_ERR_INIT {0, {0}}

/* Sets err (if not NULL) to code and the formatted message; returns code. */
int em_err_set(em_err *err, int code, const char *fmt, ...) EM_PRINTF(3, 4);
/* Prepends "<formatted>: " to err->msg (truncating at the end); returns err->code. */
int em_err_prefix(em_err *err, const char *fmt, ...) EM_PRINTF(2, 3);
/* Copies src into dst (dst may be NULL); returns src->code. */
int em_err_copy(em_err *dst, const em_err *src);
void em_err_clear(em_err *err);
/* Static strings: "out of memory", and "ENOMEM". Unknown codes give "unknown error". */
const char *em_strerror(int code);
const char *em_errname(int code);

/* Bugs, not errors: stays on in release builds; aborts naming file, line and expression.
 * Never use on bytes from a file, socket or user. */
#define EM_ASSERT(expr) \
    ((expr) ? (void)0 : em__assert_fail(#expr, __FILE__, __LINE__))
#ifdef NDEBUG
#define EM_DEBUG_ASSERT(expr) ((void)0)
#else
#define EM_DEBUG_ASSERT(expr) EM_ASSERT(expr)
#endif
EM_NORETURN void em__assert_fail(const char *expr, const char *file, int line);
/* Prints "ember: fatal: <message>" to stderr and aborts. For lost processes only. */
EM_NORETURN void em_panic(const char *fmt, ...) EM_PRINTF(1, 2);

/* ---------------------------------------------------------------- memory */

/* Fallible allocation: NULL on failure (the caller returns EM_ENOMEM). Hookable. */
void *em_malloc(size_t n);
void *em_calloc(size_t count, size_t size);
void *em_realloc(void *p, size_t n);
void em_free(void *p);
/* As em_malloc, aligned to `align` (a power of two, at least sizeof(void *)); free with
 * em_free. FIXED batch payloads are 64-byte aligned so that SIMD loads and BLAS see
 * aligned rows (engine/data/data.h). */
void *em_malloc_aligned(size_t align, size_t n);
/* Big buffers (broadcast values, assembled results): n >= EM_BIG_MIN bytes come from a
 * 2 MiB aligned mapping advised MADV_HUGEPAGE where transparent huge pages are on, so
 * first touching them costs one page fault per 2 MiB, not per 4 KiB; else (smaller, no
 * THP, mmap failed) from the heap. 64-byte aligned either way; NULL where em_malloc would
 * fail (hookable). Free only with em_free_big (NULL is a no-op). Any thread. */
#define EM_BIG_MIN ((size_t)4 << 20)   /* below it, heap reuse beats a mapping */
void *em_malloc_big(size_t n);
void em_free_big(void *p);
bool em_big_hugepages(void);   /* true when em_malloc_big maps huge pages (runtime probe) */
/* Freed mappings are kept for reuse (up to 256 of them, 1 GiB in all: touched pages cost
 * no faults; a request they cannot serve unmaps at least as much of them first);
 * em_big_trim unmaps them, em_big_cached_bytes says how much is kept. */
void em_big_trim(void);
/* The allocator policy of a process that runs tasks (an executor, or the driver of a
 * local[N] context): freed memory kept for reuse rather than handed back to the kernel, one
 * malloc arena. Process-wide, applied once (later calls do nothing); glibc only. */
void em_task_process_malloc_policy(void);
size_t em_big_cached_bytes(void);
char *em_strdup(const char *s);          /* NULL on failure */
char *em_strndup(const char *s, size_t n);

/* Aborting allocation for small control structures whose size does not come from input. */
void *em_xmalloc(size_t n);
void *em_xcalloc(size_t count, size_t size);
void *em_xrealloc(void *p, size_t n);
char *em_xstrdup(const char *s);
/* asprintf that aborts on OOM; caller frees with em_free(). */
char *em_xasprintf(const char *fmt, ...) EM_PRINTF(1, 2);

/* Overflow-checked arithmetic on sizes: returns false (and leaves *out alone) on overflow. */
static inline bool em_size_mul(size_t a, size_t b, size_t *out)
{
    size_t r;
    if (__builtin_mul_overflow(a, b, &r))
        return false;
    *out = r;
    return true;
}
static inline bool em_size_add(size_t a, size_t b, size_t *out)
{
    size_t r;
    if (__builtin_add_overflow(a, b, &r))
        return false;
    *out = r;
    return true;
}

/* Test hooks (before threads start): make the allocation after n more succeed fail; every
 * allocation after that fails too until em_test_alloc_reset(). n < 0 disables. */
void em_test_fail_alloc_after(long n);
void em_test_alloc_reset(void);
/* Test hooks for em_malloc_big: force the heap path; count live mapped buffers. */
void em_test_big_force_fallback(bool on);
long em_test_big_live(void);

/* ---------------------------------------------------------------- slices and buffers */

/* A borrowed byte range; the owner says how long it lives. */
typedef struct em_slice {
    const uint8_t *p;
    size_t n;
} em_slice;

static inline em_slice em_slice_make(const void *p, size_t n)
{
    em_slice s = {(const uint8_t *)p, n};
    return s;
}
em_slice em_slice_str(const char *s);                 /* NUL not included */
int em_slice_cmp(em_slice a, em_slice b);             /* memcmp order, shorter first on tie */
bool em_slice_eq(em_slice a, em_slice b);

/* Growable byte buffer, caller-provided struct (_init/_destroy). data is NULL until the
 * first append. Invariant: len <= cap. Appends return 0 or EM_ENOMEM (buffer unchanged). */
typedef struct em_vbuf {
    uint8_t *data;
    size_t len;
    size_t cap;
} em_vbuf;

void em_vbuf_init(em_vbuf *b);
void em_vbuf_destroy(em_vbuf *b);                    /* frees data; b may be reused after init */
int em_vbuf_reserve(em_vbuf *b, size_t extra);        /* ensures cap >= len + extra */
/* As em_vbuf_reserve, keeping data `align`-aligned (a power of two, em_malloc_aligned):
 * such a buffer must only ever grow through this call (em_vbuf_reserve would realloc). */
int em_vbuf_reserve_aligned(em_vbuf *b, size_t extra, size_t align);
int em_vbuf_append(em_vbuf *b, const void *p, size_t n);
int em_vbuf_append_u32le(em_vbuf *b, uint32_t v);
int em_vbuf_append_u64le(em_vbuf *b, uint64_t v);
int em_vbuf_printf(em_vbuf *b, const char *fmt, ...) EM_PRINTF(2, 3);  /* keeps a NUL after len */
static inline void em_vbuf_clear(em_vbuf *b) { b->len = 0; }
/* Takes the bytes out: returns data (caller frees with em_free), leaves b empty. */
uint8_t *em_vbuf_steal(em_vbuf *b, size_t *len);

/* Growable arrays: the one helper behind every "grow by doubling" array of the code base.
 * Returns p grown (em_realloc) so that it holds at least `need` elements of `elem` bytes,
 * updating *cap (in elements); capacity doubles, starting at 8. Returns p itself when
 * *cap >= need already; NULL on overflow or out of memory, leaving p valid and *cap as it
 * was. Typical use:  T *g = em_arr_grow(a, &cap, n + 1, sizeof *a); if (!g) ...; a = g;
 * em_arr_xgrow aborts instead of returning NULL (as em_xrealloc). */
void *em_arr_grow(void *p, size_t *cap, size_t need, size_t elem);
void *em_arr_xgrow(void *p, size_t *cap, size_t need, size_t elem);

/* The input files a path names, as every file reader takes it (text sources, MLlib's
 * loaders): a regular file; a directory's regular files not starting with '_' or '.',
 * sorted by name; or a glob's matches (directories among them expanded the same way).
 * em_file_list_expand fills *fl (zeroed first) with paths and sizes; EM_ENOTFOUND naming
 * the path when nothing matches; EM_EACCES naming the directory or file this process may
 * not read (an unreadable input is an error, never silently "no file"). */
typedef struct em_file_list {
    char **paths;
    uint64_t *sizes;
    size_t n, cap, scap;
} em_file_list;
int em_file_list_expand(const char *path, em_file_list *fl, em_err *err);
void em_file_list_destroy(em_file_list *fl);

/* Refcounted immutable byte buffer. em_buf_new returns refcount 1; last unref frees. */
typedef struct em_buf em_buf;
em_buf *em_buf_new(size_t len);                       /* uninitialised bytes; NULL on OOM */
em_buf *em_buf_new_copy(const void *p, size_t len);   /* NULL on OOM */
/* Adopts p (allocated with em_malloc); frees it on the last unref. NULL on OOM (p freed). */
em_buf *em_buf_new_take(void *p, size_t len);
em_buf *em_buf_ref(em_buf *b);                        /* returns b */
void em_buf_unref(em_buf *b);                         /* NULL ok */
uint8_t *em_buf_data(em_buf *b);                      /* writable only while refcount == 1 */
size_t em_buf_len(const em_buf *b);

/* Arena: bump allocator for data that dies together (one task, one query). Not thread-safe:
 * one thread per arena. Allocations are 16-byte aligned. */
typedef struct em_arena_chunk em_arena_chunk;
typedef struct em_arena {
    em_arena_chunk *head;
    size_t chunk_size;     /* bytes per new chunk; 0 = 64 KiB */
    size_t total;          /* bytes held in chunks */
} em_arena;
void em_arena_init(em_arena *a, size_t chunk_size);
void *em_arena_alloc(em_arena *a, size_t n);          /* NULL on OOM */
void *em_arena_memdup(em_arena *a, const void *p, size_t n);
void em_arena_reset(em_arena *a);                     /* frees everything */
#define em_arena_destroy em_arena_reset

/* ---------------------------------------------------------------- byte order */

static inline uint32_t em_load_le32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static inline uint64_t em_load_le64(const uint8_t *p)
{
    return (uint64_t)em_load_le32(p) | (uint64_t)em_load_le32(p + 4) << 32;
}
static inline uint16_t em_load_le16(const uint8_t *p)
{
    return (uint16_t)(p[0] | p[1] << 8);
}
static inline void em_store_le16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}
static inline void em_store_le32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
    p[2] = (uint8_t)(v >> 16);
    p[3] = (uint8_t)(v >> 24);
}
static inline void em_store_le64(uint8_t *p, uint64_t v)
{
    em_store_le32(p, (uint32_t)v);
    em_store_le32(p + 4, (uint32_t)(v >> 32));
}
/* Big-endian 64-bit load/store (order-preserving int64 keys, SHA-256 lengths). memcpy +
 * byte swap compiles to one load and a bswap; a byte loop stays a loop at -O2. */
static inline uint64_t em_load_be64(const uint8_t *p)
{
    uint64_t v;
    __builtin_memcpy(&v, p, 8);
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    v = __builtin_bswap64(v);
#endif
    return v;
}
static inline void em_store_be64(uint8_t *p, uint64_t v)
{
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    v = __builtin_bswap64(v);
#endif
    __builtin_memcpy(p, &v, 8);
}

/* ---------------------------------------------------------------- checksums, hashing */

/* CRC-32C (Castagnoli). Start with crc = 0; chain by passing the previous result. */
uint32_t em_crc32c(uint32_t crc, const void *p, size_t n);
/* 64-bit non-cryptographic hash of bytes (seeded); stable across runs and machines, so a
 * hash partitioner assigns the same key to the same partition in every process. */
uint64_t em_hash64(const void *p, size_t n, uint64_t seed);
static inline uint64_t em_mix64(uint64_t x)   /* splitmix64 finaliser */
{
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ULL;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebULL;
    x ^= x >> 31;
    return x;
}

/* ---------------------------------------------------------------- random numbers */

/* xoshiro256** seeded through splitmix64. One thread per object. */
typedef struct em_rng {
    uint64_t s[4];
} em_rng;
void em_rng_seed(em_rng *r, uint64_t seed);
uint64_t em_rng_next(em_rng *r);
double em_rng_double(em_rng *r);                 /* uniform in [0, 1) */
uint64_t em_rng_below(em_rng *r, uint64_t n);    /* uniform in [0, n), n > 0 */
double em_rng_gaussian(em_rng *r);               /* standard normal */
uint32_t em_rng_poisson(em_rng *r, double mean); /* mean >= 0 */

/* ---------------------------------------------------------------- time */

uint64_t em_now_ns(void);   /* monotonic */
double em_now_s(void);      /* monotonic seconds */

/* ---------------------------------------------------------------- logging */

typedef enum em_log_level {
    EM_LOG_DEBUG = 0,
    EM_LOG_INFO = 1,
    EM_LOG_WARN = 2,
    EM_LOG_ERROR = 3,
} em_log_level;

typedef void (*em_log_sink_fn)(void *ud, em_log_level level, const char *msg);
/* Before threads start. NULL sink restores the default (stderr, level >= min_level).
 * The default minimum level comes from EMBER_LOG (debug|info|warn|error), else warn. */
void em_log_set_sink(em_log_sink_fn fn, void *ud);
void em_log_set_level(em_log_level min_level);
void em_log(em_log_level level, const char *fmt, ...) EM_PRINTF(2, 3);

/* ---------------------------------------------------------------- files */

/* A file being written under "<path>.tmp.<pid>.<n>" that becomes `path` only on commit. */
typedef struct em_file em_file;
int em_file_create_tmp(const char *path, em_file **out, em_err *err);
int em_file_write(em_file *f, const void *p, size_t n, em_err *err);
uint64_t em_file_offset(const em_file *f);        /* bytes written so far */
/* fsync + rename onto the final path (+ fsync of the directory when sync was asked).
 * Consumes f, also on failure (then the temporary file is removed). */
int em_file_commit(em_file *f, em_err *err);
/* As em_file_commit, with the fsync only when sync is true: without it the rename is still
 * atomic for readers of this machine, but the bytes may be lost in a power failure (right
 * for files that are recomputed when missing, such as shuffle outputs). */
int em_file_commit_sync(em_file *f, bool sync, em_err *err);
void em_file_abort(em_file *f);                   /* NULL ok; closes and unlinks the tmp file */

/* Reads a whole file into *out (caller frees with em_free); errors name the path. */
int em_read_file(const char *path, uint8_t **out, size_t *len, em_err *err);
/* The EM_E* code of an errno from opening a file: EM_EACCES for EACCES/EPERM (final: the
 * scheduler does not retry it), EM_ENOSPC, EM_ENOMEM, else EM_EIO. Any thread. */
int em_errno_code_open(int e);
/* pread of exactly n bytes at off; EM_EIO (or EM_ECORRUPT on a short read) naming path. */
int em_pread_full(int fd, void *p, size_t n, uint64_t off, const char *path, em_err *err);
int em_write_full(int fd, const void *p, size_t n, const char *path, em_err *err);
int em_mkdir_p(const char *path, em_err *err);
int em_rm_rf(const char *path, em_err *err);      /* missing path is not an error */
/* Writes a whole file atomically (tmp + fsync + rename). */
int em_write_file_atomic(const char *path, const void *p, size_t n, em_err *err);

/* ---------------------------------------------------------------- line-aligned splits */

/* The one line splitter of every text reader (engine/exec/text.c, mllib's loaders).
 * SPLIT RULE (Hadoop's LineRecordReader): a byte range [start, start+len) of a file owns
 * every line whose first byte offset s satisfies start <= s < start+len, where a line starts
 * at offset 0 or right after a '\n'. So a range with start > 0 whose previous byte is not
 * '\n' skips the partial line it begins in, and the last line it owns may run past its end.
 * The ranges of any cut of a file yield every line exactly once.
 * LINES: em_lines_next strips the '\n' and one '\r' before it; a final line without '\n'
 * counts; a trailing '\n' does not start an empty last line. */

/* The first line start at or after off in fd: off when off == 0 or byte off-1 is '\n',
 * else just past the next '\n', else the file size (off when off is past it). EM_EIO
 * naming path on a read error.
 * So the range [a, b) owns exactly the lines starting in [align(a), align(b)). */
int em_line_align(int fd, uint64_t off, const char *path, uint64_t *out, em_err *err);

/* Reads the lines of one byte range through one reusable buffer (pread in chunks; a line
 * longer than the buffer grows it). Caller-provided struct: em_lines_init once, then
 * em_lines_start for each range (the buffer is kept), em_lines_destroy at the end.
 * One thread per object; fd and path are borrowed until the next start or destroy. */
typedef struct em_lines {
    int fd;
    const char *path;
    uint8_t *buf;
    size_t cap, head, tail;   /* unread bytes are buf[head, tail) */
    size_t chunk;             /* read size; also the first buffer size */
    size_t max_line;          /* longest line accepted (bytes); 0 = no limit */
    uint64_t buf_off;         /* file offset of buf[0] */
    uint64_t end;             /* lines starting at or after this offset belong to others */
    uint64_t lineno;          /* lines returned by em_lines_next since start */
    size_t scanned;           /* buf[head, head + scanned) is known to hold no '\n' */
    bool eof, skipping, stream;
} em_lines;

/* len for em_lines_start: everything read() returns from fd's current position (pipes too),
 * start must be 0. */
#define EM_LINES_TO_EOF UINT64_MAX

/* chunk = read size (0 = 1 MiB); max_line = 0 (no limit) or the longest line accepted. */
void em_lines_init(em_lines *l, size_t chunk, size_t max_line);
/* Starts range [start, start+len) of fd (start's previous byte decides whether the first
 * partial line is skipped). EM_EIO naming path. */
int em_lines_start(em_lines *l, int fd, const char *path, uint64_t start, uint64_t len,
                   em_err *err);
/* 1 and the next line (without '\n' and a '\r' before it; borrowed until the next call),
 * 0 when the range has no more lines, <0 on error: EM_EIO, EM_ENOMEM, EM_ECORRUPT (a line
 * longer than max_line), naming path and offset. l->lineno is then the line's number,
 * counted from 1 at the range's first line (so the file's line number when start == 0). */
int em__lines_next_slow(em_lines *l, em_slice *line, em_err *err);
static inline int em_lines_next(em_lines *l, em_slice *line, em_err *err)
{
    /* Inline fast path: a whole line already in the buffer (nearly every line). */
    if (EM_LIKELY(!l->skipping && !l->scanned && l->tail > l->head &&
                  l->buf_off + l->head < l->end)) {
        const uint8_t *p = l->buf + l->head;
        const uint8_t *nl = (const uint8_t *)__builtin_memchr(p, '\n', l->tail - l->head);
        if (EM_LIKELY(nl != NULL)) {
            size_t len = (size_t)(nl - p);
            if (len && p[len - 1] == '\r')
                len--;
            l->head = (size_t)(nl - l->buf) + 1;
            l->lineno++;
            *line = em_slice_make(p, len);
            return 1;
        }
    }
    return em__lines_next_slow(l, line, err);
}
/* As em_lines_next, but 1 and a block of consecutive whole lines as they are in the file,
 * each with its '\n' (only the file's last line may lack it): for parsers that scan many
 * lines at once. Does not count lines. Use either call on one range, not both. */
int em_lines_block(em_lines *l, em_slice *block, em_err *err);
void em_lines_destroy(em_lines *l);   /* frees the buffer; does not close fd */

/* Parses "512m", "4g", "1024", "64k" (binary units) into bytes; -1 on error. */
int64_t em_parse_size(const char *s);

#endif /* EMBER_BASE_H */
