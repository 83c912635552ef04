/* engine/net/net.h - the wire between ember processes: length-prefixed binary frames with a
 * hard size cap, decoded by an incremental state machine, and the mutual HMAC-SHA256
 * challenge-response that every connection completes before any other frame is read.
 * Frames after login are sealed with AES-256-GCM (auth.c); the sizes below are of the
 * plaintext, the tag adds EM_AEAD_TAG_LEN bytes on the wire.
 *
 * FRAME FORMAT (little-endian)
 *   off  size  field
 *     0     4  magic "EMFR"
 *     4     4  body length n (type byte + payload), 1 <= n <= cap
 *     8     1  frame type (em_frame_type)
 *     9   n-1  payload
 * WHY a magic per frame: a peer speaking something else (HTTP, a port scanner) is rejected on
 * its first 4 bytes, before the length is trusted.
 *
 * THREADS: a decoder is one thread per object; the hash functions are pure. */
#ifndef EMBER_NET_H
#define EMBER_NET_H

#include "engine/base/base.h"

#define EM_FRAME_HEADER_SIZE 9
#define EM_FRAME_MAX_BODY (64u << 20)     /* default cap after login: 64 MiB */
#define EM_FRAME_PRELOGIN_MAX 256u        /* cap before the handshake completes */

typedef enum em_frame_type {
    EM_FRAME_HELLO = 1,       /* client nonce + link mode */
    EM_FRAME_CHALLENGE = 2,   /* server nonce + link mode */
    EM_FRAME_PROOF = 3,       /* client proof */
    EM_FRAME_WELCOME = 4,     /* handshake done: server proof */
    EM_FRAME_DENIED = 5,      /* login refused (reason byte); the server then closes */
    EM_FRAME_RPC = 16,        /* JSON control message */
    EM_FRAME_DATA = 17,       /* binary payload (blocks) */
    EM_FRAME_HEARTBEAT = 18,
    EM_FRAME_PRESEALED = 19,  /* sealed links only: a sealed head + a tail sealed by its
                                 sender under a key of its own (below); delivered as DATA */
} em_frame_type;

/* PRESEALED FRAMES (sealed links only; docs/security.md, "pre-sealed payloads"): bytes that
 * go to several peers (a broadcast piece) are sealed once by the application under a key
 * of its own and sent as an opaque tail, while the link seals only a small head that
 * carries what the receiver needs to open the tail (the key among it). Payload:
 *   off     size  field
 *     0        4  head length h (1..EM_PRESEALED_HEAD_MAX), in clear, part of the AAD
 *     4        h  head, sealed like any frame (AAD = frame header || h; the link's
 *                 sequence number as IV)
 *   4+h       16  the head's tag
 *   20+h       -  tail: written and delivered as is (the application proves it)
 * A modified, replayed, reordered or injected head closes the connection as any frame; the
 * receiver's on_frame sees a DATA frame whose payload is the head's plaintext followed by
 * the tail. A PRESEALED frame on a plain link is a protocol error. */
#define EM_PRESEALED_HEAD_MAX 4096u

/* Appends one frame to out. EM_EINVAL when the body exceeds EM_FRAME_MAX_BODY. */
int em_frame_encode(em_vbuf *out, uint8_t type, const void *payload, size_t n, em_err *err);
/* As em_frame_encode with the payload given as the concatenation of nparts slices, so a
 * caller's header and bulk bytes are copied once, straight into the frame. */
int em_frame_encodev(em_vbuf *out, uint8_t type, const em_slice *parts, size_t nparts,
                     em_err *err);
/* The frame header and parts of a frame whose payload ends with `tail` more bytes that the
 * caller writes itself (the cap counts them). */
int em_frame_encode_head(em_vbuf *out, uint8_t type, const em_slice *parts, size_t nparts,
                         size_t tail, em_err *err);

typedef struct em_aead em_aead;

/* Incremental decoder: feed it whatever bytes a read delivered (any split, even one byte at
 * a time); it calls on_frame once per complete frame. The body is borrowed for the call.
 * A bad magic, a zero or over-cap length is EM_EPROTO naming the frame number; after an
 * error the decoder is poisoned (every later feed returns the same error).
 * SEALED STREAMS: with `open` set (after login on a crypto link) every frame's payload ends
 * with its AES-GCM tag; the decoder decrypts each frame in place as its bytes arrive (the
 * header is the AAD; the cap counts the tag) and delivers only frames whose tag verified,
 * without the tag. In place means feed writes into the bytes it is given: they must be the
 * caller's own (a read buffer), never shared or read-only memory. */
typedef int (*em_frame_fn)(void *ud, uint8_t type, em_slice payload, em_err *err);
typedef struct em_frame_decoder {
    uint32_t cap;            /* max body bytes accepted now (lower it before login) */
    uint64_t nframes;        /* frames delivered so far */
    uint8_t hdr[EM_FRAME_HEADER_SIZE];
    uint32_t hdr_have;
    uint32_t body_len;       /* of the frame being read (type byte included) */
    em_vbuf body;
    em_aead *open;           /* borrowed; NULL = frames in clear */
    size_t opened;           /* payload bytes of this frame decrypted so far */
    uint32_t head_len;       /* PRESEALED frame: its head length once known, else 0 */
    bool head_done;          /* PRESEALED frame: the head's tag verified */
    int poisoned;            /* 0 or the first error code */
    em_err first_err;
} em_frame_decoder;

void em_frame_decoder_init(em_frame_decoder *d, uint32_t cap);
void em_frame_decoder_destroy(em_frame_decoder *d);
int em_frame_decoder_feed(em_frame_decoder *d, const uint8_t *p, size_t n, em_frame_fn fn,
                          void *ud, em_err *err);
/* Zero-copy receive of big bodies: when the frame being read still lacks at least `min`
 * body bytes, reserves room for all of them and points *where at it; returns how many fit
 * (0 otherwise: read into your own buffer). A read into that room is then fed as usual
 * (p == *where, n <= the room): the bytes are taken where they are, not copied. The room
 * is valid until the next feed. */
size_t em_frame_decoder_room(em_frame_decoder *d, size_t min, uint8_t **where);

/* ---------------------------------------------------------------- authentication */

#define EM_SHA256_LEN 32
/* Every primitive below is OpenSSL's libcrypto (engine/net/auth.c); pure, any thread. */
void em_sha256(const void *p, size_t n, uint8_t out[EM_SHA256_LEN]);
void em_hmac_sha256(const void *key, size_t klen, const void *msg, size_t n,
                    uint8_t out[EM_SHA256_LEN]);
/* Constant-time comparison (CRYPTO_memcmp): true when equal. */
bool em_ct_equal(const void *a, const void *b, size_t n);
/* Zeroes memory holding a secret in a way the compiler cannot drop (OPENSSL_cleanse). */
void em_secure_zero(void *p, size_t n);
/* HKDF-SHA256 (RFC 5869): olen bytes into out. EM_EIO if OpenSSL fails. */
int em_hkdf_sha256(const void *ikm, size_t ilen, const void *salt, size_t slen,
                   const char *info, uint8_t *out, size_t olen, em_err *err);

/* Handshake proofs (both sides hold the secret; nonces are 32 random bytes each; mode is
 * the link mode both sides announced, EM_NET_MODE_*, so a relay cannot downgrade it):
 *   client proof = HMAC(secret, "ember-client" || client nonce || server nonce || mode)
 *   server proof = HMAC(secret, "ember-server" || client nonce || server nonce || mode)
 * The distinct labels stop a reflected proof from passing as the other side's. The client
 * proves first: a server sends its proof only to a client that proved the secret, so
 * saying HELLO to a server yields nothing to guess the secret against offline. */
#define EM_NET_MODE_CRYPTO 1      /* frames after login sealed with AES-256-GCM */
#define EM_NET_MODE_PLAIN 0       /* ember.network.crypto=false: trusted networks only */
void em_auth_proof(const void *secret, size_t slen, bool server, const uint8_t cnonce[32],
                   const uint8_t snonce[32], uint8_t mode, uint8_t out[EM_SHA256_LEN]);

/* One direction of a link's frame protection (AES-256-GCM; key by HKDF, see auth.c). A
 * frame is sealed or opened with begin (the frame header as AAD; takes the next sequence
 * number), update (any number of pieces; in == out allowed), finish (the tag: written when
 * sealing, checked when opening: EM_EAUTH on mismatch). After a failure the direction
 * refuses every later frame. One thread at a time. */
#define EM_AEAD_TAG_LEN 16
em_aead *em_aead_new(const void *secret, size_t slen, const uint8_t cnonce[32],
                     const uint8_t snonce[32], bool client_to_server, bool seal, em_err *err);
void em_aead_free(em_aead *a);   /* NULL ok */
int em_aead_begin(em_aead *a, const uint8_t *aad, size_t alen, em_err *err);
int em_aead_update(em_aead *a, const uint8_t *in, uint8_t *out, size_t n, em_err *err);
int em_aead_finish(em_aead *a, uint8_t tag[EM_AEAD_TAG_LEN], em_err *err);

/* The AEADs for payloads sealed once and sent to several peers (PRESEALED frames; the
 * links themselves are always AES-256-GCM). The id travels in a link-sealed head, so a relay
 * cannot change it; docs/security.md "ciphers" gives the choice and the numbers. */
typedef enum em_cipher {
    EM_CIPHER_AES_128_OCB = 1,   /* RFC 7253 (OCB3), 16-byte tag: the default (fastest) */
    EM_CIPHER_AES_128_GCM = 2,
    EM_CIPHER_AES_256_GCM = 3,
} em_cipher;
#define EM_CIPHER_DEFAULT EM_CIPHER_AES_128_OCB
/* "aes-128-ocb" | "aes-128-gcm" | "aes-256-gcm" (any case); NULL or "" gives the default;
 * else EM_EINVAL naming `what`. */
int em_cipher_parse(const char *v, const char *what, em_cipher *out, em_err *err);
const char *em_cipher_name(em_cipher c);   /* "unknown" for an unknown id */
bool em_cipher_known(int id);              /* an id read off the wire */

/* One-shot AEAD under cipher c: IV = 4 zero bytes || be64(nonce), the tag apart; the key is
 * EM_AEAD_KEY_LEN bytes of which a 128-bit cipher uses the first 16. The caller must never
 * seal two messages under one key and nonce (use a fresh random key per payload set and a
 * distinct nonce per message). Opening writes plaintext to out and returns EM_EAUTH when the
 * tag does not verify (out then holds garbage: do not use it). in == out allowed. Any
 * thread. */
#define EM_AEAD_KEY_LEN 32
int em_aead_seal_once(em_cipher c, const uint8_t key[EM_AEAD_KEY_LEN], uint64_t nonce,
                      const uint8_t *aad, size_t alen, const uint8_t *in, uint8_t *out,
                      size_t n, uint8_t tag[EM_AEAD_TAG_LEN], em_err *err);
int em_aead_open_once(em_cipher c, const uint8_t key[EM_AEAD_KEY_LEN], uint64_t nonce,
                      const uint8_t *aad, size_t alen, const uint8_t *in, uint8_t *out,
                      size_t n, const uint8_t tag[EM_AEAD_TAG_LEN], em_err *err);

/* 32 bytes from the kernel's CSPRNG (getrandom / /dev/urandom). */
int em_random_bytes(void *out, size_t n, em_err *err);


/* ---------------------------------------------------------------- addresses (addr.c)
 * How ember writes a peer's address: "HOST:PORT", where HOST is a name ("node7",
 * "node7.example.org"), an IPv4 literal, or an IPv6 literal in brackets ("[::1]:7077",
 * "[fe80::1%eth0]:7077"), as in URLs (RFC 3986). Names are resolved when connecting or
 * listening, on libuv's thread pool (uv_getaddrinfo), never on the loop thread; a name with
 * both kinds of address is used through its first IPv4 one (the default listeners are
 * IPv4), else its first IPv6 one. "localhost" is 127.0.0.1 without a lookup.
 * Every function here is pure (any thread). Addresses from the wire (an executor's
 * location, a driver's address) go through em_net_addr_split: fuzzed by fuzz_addr. */
#define EM_NET_HOST_MAX 256                    /* bytes of a host, NUL included */
#define EM_NET_ADDR_MAX (EM_NET_HOST_MAX + 8)  /* "[HOST]:PORT" and the NUL */

/* Whether host is a name or literal ember accepts: 1..255 bytes of letters, digits and
 * ".-_", or an IPv6 literal (hex digits, ':' and '.', an optional "%zone"), unbracketed. */
bool em_net_host_valid(const char *host);
/* Whether host is an IPv6 literal (holds ':'), so that it is printed in brackets. */
bool em_net_host_is_v6(const char *host);
/* Whether host is a wildcard bind address ("0.0.0.0", "::", "" or "*"): listening there
 * reaches every interface, but it is no address to give peers. */
bool em_net_host_is_any(const char *host);
/* Splits s = "HOST:PORT", "[V6]:PORT" into host (cap bytes) and *port (1..65535). With
 * def_port != 0 the port may be left out ("HOST", "[V6]", or a bare IPv6 literal) and is
 * def_port. EM_EINVAL quoting s and saying what is wrong (an IPv6 literal with a port
 * must be in brackets). */
int em_net_addr_split(const char *s, char *host, size_t cap, uint16_t *port, uint16_t def_port,
                      em_err *err);
/* The host to give peers for a listener bound to `bind` (NULL = 127.0.0.1): `adv` when
 * set (--advertise-host, ember.driver.host), else bind, else for a wildcard bind this
 * machine's name (gethostname), as Spark advertises its local host name. Into out (n). */
void em_net_advertised(const char *bind, const char *adv, char *out, size_t n);
/* The address of host (a name or a literal) as a literal into ip (cap bytes;
 * INET6_ADDRSTRLEN always fits), chosen as a connection would choose it: the first IPv4
 * address, else (unless ipv4_only) the first IPv6 one. Calls getaddrinfo in the caller's
 * thread (it blocks on DNS: never on a loop thread). EM_EIO naming host and the reason. */
int em_net_resolve_ip(const char *host, bool ipv4_only, char *ip, size_t cap, em_err *err);
/* Writes "HOST:PORT" ("[HOST]:PORT" for IPv6 literals) into buf (n bytes, truncated). */
void em_net_addr_format(char *buf, size_t n, const char *host, uint16_t port);
/* Parses a port setting: "PORT" (0 = any free one) or a range "LO-HI" (1 <= LO <= HI),
 * tried in order by em_net_listen_range, as Spark's spark.*.port with port retries: fixed
 * ports let a firewall open exactly them. EM_EINVAL naming `what`. */
int em_net_port_range_parse(const char *v, const char *what, uint16_t *lo, uint16_t *hi,
                            em_err *err);

/* ---------------------------------------------------------------- connections
 * em_net runs one libuv loop on its own thread (the loop thread), which owns every socket,
 * timer and handle. Other threads talk to it through a mutex-protected command queue woken
 * by uv_async_send; blocking calls wait for the loop thread's answer. Connections are named
 * by ids, never by pointers, so a connection closing under another thread's feet is an
 * EM_ENOTFOUND, not a use-after-free.
 * Every connection authenticates (HELLO / CHALLENGE / PROOF / WELCOME, proofs above) before
 * any other frame; until then frames are capped at EM_FRAME_PRELOGIN_MAX, a login timeout
 * runs, and inbound connections not yet logged in are capped (globally and per peer
 * address: the oldest is dropped for a new one, so idle sockets cannot lock out a correct
 * login). A refused login is final: the server sends DENIED, logs the peer's address
 * (rate-limited) and closes; the client's connect returns EM_EAUTH, never retried.
 * After login every frame is sealed with AES-256-GCM under per-direction session keys
 * (format in auth.c) unless the link is plain (both sides must agree; see em_net_opts). Afterwards both sides send heartbeats; a peer silent past peer_timeout_ms
 * is closed (a stopped process keeps its TCP connection open: only silence finds it).
 * BACKPRESSURE: em_net_send blocks while the connection has more than send_queue_max bytes
 * queued; while a connection's queue is over the limit the loop stops reading from it. */
typedef struct em_net em_net;
typedef uint64_t em_conn_id;

typedef struct em_net_ops {
    /* Loop thread: the peer completed the handshake. */
    void (*on_open)(void *ud, em_conn_id c, bool inbound);
    /* Loop thread: one frame (payload borrowed for the call); <0 closes the connection. */
    int (*on_frame)(void *ud, em_conn_id c, uint8_t type, em_slice payload, em_err *err);
    /* Loop thread: the connection is gone; why->code == 0 for an orderly close. Called only
     * for connections that were opened. */
    void (*on_close)(void *ud, em_conn_id c, const em_err *why);
    /* Loop thread, optional: connection c's send queue fell to em_net_drain_mark or below
     * after being above it (a producer that held back can go on). */
    void (*on_drain)(void *ud, em_conn_id c);
} em_net_ops;

typedef struct em_net_opts {
    const void *secret;          /* shared secret (copied); required, >= 16 bytes */
    size_t secret_len;
    const em_net_ops *ops;       /* required */
    void *ud;
    uint32_t heartbeat_ms;       /* 0 = 1000 */
    uint32_t peer_timeout_ms;    /* 0 = 10000 */
    uint32_t login_timeout_ms;   /* 0 = 5000 */
    uint32_t max_frame;          /* body cap after login; 0 = EM_FRAME_MAX_BODY */
    size_t send_queue_max;       /* bytes; 0 = 64 MiB */
    int crypto;                  /* EM_NET_CRYPTO_*; 0 = from $EMBER_NETWORK_CRYPTO, else on */
    uint32_t max_prelogin;       /* inbound connections not logged in; 0 = 64 */
    uint32_t max_prelogin_peer;  /* of those, from one address; 0 = 16 */
} em_net_opts;
/* Link protection after login. OFF sends frames in clear and unauthenticated: for trusted
 * networks only (docs/security.md). Both ends of a link must agree, else the login fails
 * with a message saying so. */
enum { EM_NET_CRYPTO_ENV = 0, EM_NET_CRYPTO_ON = 1, EM_NET_CRYPTO_OFF = 2 };
/* Parses a crypto setting ("true"/"false"/"1"/"0"/"on"/"off"); NULL or "" gives ON.
 * EM_EINVAL naming `what` for anything else. Pure. */
int em_net_crypto_parse(const char *v, const char *what, int *out, em_err *err);

/* Starts the loop thread. Any thread. */
em_net *em_net_new(const em_net_opts *opts, em_err *err);
/* Stops the loop thread and closes every connection (on_close is called for open ones).
 * Not from the loop thread. NULL ok. */
void em_net_free(em_net *n);
/* Listens on host (NULL = 127.0.0.1; a name, an IPv4 or IPv6 literal without brackets,
 * "0.0.0.0" or "::" for every interface) and port (0 = any); *bound gets the port. Blocks. */
int em_net_listen(em_net *n, const char *host, uint16_t port, uint16_t *bound, em_err *err);
/* As em_net_listen on the first free port of lo..hi (em_net_port_range_parse; lo == hi ==
 * 0: any). EM_EIO naming the range when every port is taken. Blocks. */
int em_net_listen_range(em_net *n, const char *host, uint16_t lo, uint16_t hi,
                        uint16_t *bound, em_err *err);
/* Connects and authenticates; blocks until open or failed (EM_EAUTH for a wrong secret,
 * EM_EIO for a refused connection or a name that does not resolve, EM_ETIMEDOUT). host as
 * for em_net_listen. Not from the loop thread. */
int em_net_connect(em_net *n, const char *host, uint16_t port, em_conn_id *out, em_err *err);
/* Queues one frame (payload copied). Any thread except the loop thread blocks while the
 * queue is full; from the loop thread (inside a callback) it never blocks. */
int em_net_send(em_net *n, em_conn_id c, uint8_t type, const void *p, size_t len, em_err *err);
/* As em_net_send with the payload given as the concatenation of nparts slices (copied once,
 * straight into the frame). */
int em_net_sendv(em_net *n, em_conn_id c, uint8_t type, const em_slice *parts, size_t nparts,
                 em_err *err);
/* Bytes that end a frame's payload and are written from where they are, not copied: they
 * must stay valid and unchanged until release(ud) is called (on the loop thread once
 * written, or on any thread when the frame is dropped or the send fails). */
typedef struct em_net_ext {
    const void *p;
    size_t n;
    void (*release)(void *ud);   /* optional */
    void *ud;
} em_net_ext;
/* As em_net_sendv, with ext (NULL = none) after the parts: a broadcast piece goes out of
 * the value's own memory. ext is released also when this fails. */
int em_net_send_ext(em_net *n, em_conn_id c, uint8_t type, const em_slice *parts,
                    size_t nparts, const em_net_ext *ext, em_err *err);
/* Sends a PRESEALED frame (above; sealed links only, else EM_EINVAL): the head (the
 * concatenation of nhead slices, 1..EM_PRESEALED_HEAD_MAX bytes) is sealed by the link,
 * the tail (ext, required, released as in em_net_send_ext) is written as it is: it must
 * already be sealed by the caller. The peer receives a DATA frame of head || tail. */
int em_net_send_presealed(em_net *n, em_conn_id c, const em_slice *head, size_t nhead,
                          const em_net_ext *tail, em_err *err);
/* Blocks SIGPIPE in the calling thread: writing to a peer that died then fails with EPIPE
 * instead of killing the process, with no process-wide signal setup (a library must not
 * need one). Every thread that runs a libuv loop with sockets calls it first. */
void em_net_block_sigpipe(void);
/* Whether connection c's peer is on this host (127.0.0.0/8, ::1); false for unknown ids.
 * Any thread. Senders skip compressing bulk payloads on such links (docs/cluster.md). */
bool em_net_is_loopback(em_net *n, em_conn_id c);
/* Bytes queued on connection c and not yet written; SIZE_MAX for an unknown id. Any
 * thread. */
size_t em_net_queued(em_net *n, em_conn_id c);
/* The queue level on_drain reports crossing: send_queue_max / 4. Any thread. */
size_t em_net_drain_mark(const em_net *n);
/* Whether this process's links are sealed (ember.network.crypto on; both ends of every link
 * agree, or it does not log in): each frame's bytes are then proved end to end by its
 * AES-GCM tag, and checksums of payloads in transit are redundant. Any thread. */
bool em_net_sealed(const em_net *n);
/* Closes a connection (on_close follows on the loop thread). Any thread; unknown ids ok. */
void em_net_close(em_net *n, em_conn_id c);

#endif /* EMBER_NET_H */
