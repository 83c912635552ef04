/* sql/tpch.c - the rows of `ember gen tpch` (sql/tpch.h, docs/sql-tpch.md) and the threads
 * and files that write them.
 *
 * WHAT FOLLOWS THE SPECIFICATION (TPC-H, clause 4.2.3), per table, SF = scale factor:
 *   region   5 rows, keys 0-4;  nation 25 rows, keys 0-24 with the specification's names
 *            and regions.
 *   supplier SF * 10,000;  customer SF * 150,000;  part SF * 200,000;  partsupp 4 per part;
 *   orders   SF * 1,500,000 with sparse keys: of every 32 consecutive keys only the first 8
 *            are used (key = (i / 8) * 32 + i % 8 + 1 for the i-th order);
 *            o_custkey uniform over the customers whose key is not a multiple of 3 (a third
 *            of the customers have no orders); o_orderdate uniform in [1992-01-01,
 *            1998-12-31 - 151 days]; o_orderstatus F when all its lines are F, O when all
 *            are O, else P; o_totalprice = sum of extendedprice * (1 + tax) * (1 - discount).
 *   lineitem 1-7 lines per order (uniform); l_partkey uniform; l_suppkey one of the part's
 *            four partsupp suppliers; l_quantity 1-50; l_extendedprice = quantity *
 *            p_retailprice; l_discount 0.00-0.10; l_tax 0.00-0.08; l_shipdate = orderdate +
 *            1..121 days, l_commitdate = orderdate + 30..90, l_receiptdate = shipdate +
 *            1..30; l_returnflag R or A (even odds) when receiptdate <= 1995-06-17
 *            (CURRENTDATE), else N; l_linestatus O when shipdate > CURRENTDATE, else F.
 *   p_retailprice = (90000 + ((partkey / 10) mod 20001) + 100 * (partkey mod 1000)) / 100;
 *   ps_suppkey for the i-th (0..3) supplier of part p = (p + i * (S / 4 + (p - 1) / S))
 *   mod S + 1, S = suppliers; phone numbers "CC-LLL-LLL-LLLL" with CC = nationkey + 10;
 *   account balances -999.99..9999.99; p_name five distinct words of the 92 colors;
 *   p_type, p_container, p_brand, p_mfgr, segments, priorities, ship modes and instructions
 *   from the specification's lists; supplier comments: about SF * 5 hold "Customer ...
 *   Complaints" and SF * 5 "Customer ... Recommends" (TPC-H Q16 looks for them).
 * WHAT DOES NOT: text fields (comments) are substrings of a pool of sentences made from
 * ember's own word lists and a small grammar, not dbgen's; addresses are random
 * alphanumeric strings of 10-40 characters; the random streams are ember's (xoshiro), so
 * the rows are TPC-H-shaped, not dbgen's bytes. l_quantity is written as an integer.
 *
 * DESIGN. Every table is cut into chunks of fixed size (orders: 5,000 orders with their
 * lineitems, written to both files); chunk k of a table draws from its own random stream,
 * seeded by (seed, table, k), so the bytes do not depend on the number of threads. Worker
 * threads take chunks in order and fill their buffers; the calling thread writes finished
 * chunks in order, keeping at most 2 * threads chunks in memory. Files are written under
 * "<name>.tbl.tmp.<pid>" and renamed when complete, schema.sql last. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "sql/tpch.h"

#define POOL_BYTES       (1u << 21)  /* text pool: 2 MiB of sentences */
#define ORDERS_PER_CHUNK 5000u
#define ROWS_PER_CHUNK   25000u
#define ROW_MAX          320u        /* bytes: more than any row (the longest, partsupp, ~240) */
#define MAX_THREADS      64u

enum { T_REGION, T_NATION, T_SUPPLIER, T_CUSTOMER, T_PART, T_PARTSUPP, T_ORDERS, T_LINEITEM };

static const char *const table_names[EM_SQL_TPCH_NTABLES] = {
    "region", "nation", "supplier", "customer", "part", "partsupp", "orders", "lineitem"};

/* The column lists of schema.sql (types as ember's SQL reads them; money is DOUBLE). */
static const char *const table_cols[EM_SQL_TPCH_NTABLES] = {
    "r_regionkey INTEGER, r_name TEXT, r_comment TEXT",
    "n_nationkey INTEGER, n_name TEXT, n_regionkey INTEGER, n_comment TEXT",
    "s_suppkey INTEGER, s_name TEXT, s_address TEXT, s_nationkey INTEGER, s_phone TEXT, "
    "s_acctbal DOUBLE, s_comment TEXT",
    "c_custkey INTEGER, c_name TEXT, c_address TEXT, c_nationkey INTEGER, c_phone TEXT, "
    "c_acctbal DOUBLE, c_mktsegment TEXT, c_comment TEXT",
    "p_partkey INTEGER, p_name TEXT, p_mfgr TEXT, p_brand TEXT, p_type TEXT, p_size INTEGER, "
    "p_container TEXT, p_retailprice DOUBLE, p_comment TEXT",
    "ps_partkey INTEGER, ps_suppkey INTEGER, ps_availqty INTEGER, ps_supplycost DOUBLE, "
    "ps_comment TEXT",
    "o_orderkey INTEGER, o_custkey INTEGER, o_orderstatus TEXT, o_totalprice DOUBLE, "
    "o_orderdate DATE, o_orderpriority TEXT, o_clerk TEXT, o_shippriority INTEGER, "
    "o_comment TEXT",
    "l_orderkey INTEGER, l_partkey INTEGER, l_suppkey INTEGER, l_linenumber INTEGER, "
    "l_quantity INTEGER, l_extendedprice DOUBLE, l_discount DOUBLE, l_tax DOUBLE, "
    "l_returnflag TEXT, l_linestatus TEXT, l_shipdate DATE, l_commitdate DATE, "
    "l_receiptdate DATE, l_shipinstruct TEXT, l_shipmode TEXT, l_comment TEXT"};

/* ---------------------------------------------------------------- the specification's lists */

#define NELEM(a) (sizeof(a) / sizeof(a)[0])

static const char *const regions[] = {"AFRICA", "AMERICA", "ASIA", "EUROPE", "MIDDLE EAST"};
static const struct {
    const char *name;
    int region;
} nations[25] = {
    {"ALGERIA", 0},   {"ARGENTINA", 1},    {"BRAZIL", 1},         {"CANADA", 1},
    {"EGYPT", 4},     {"ETHIOPIA", 0},     {"FRANCE", 3},         {"GERMANY", 3},
    {"INDIA", 2},     {"INDONESIA", 2},    {"IRAN", 4},           {"IRAQ", 4},
    {"JAPAN", 2},     {"JORDAN", 4},       {"KENYA", 0},          {"MOROCCO", 0},
    {"MOZAMBIQUE", 0}, {"PERU", 1},        {"CHINA", 2},          {"ROMANIA", 3},
    {"SAUDI ARABIA", 4}, {"VIETNAM", 2},   {"RUSSIA", 3},         {"UNITED KINGDOM", 3},
    {"UNITED STATES", 1}};
static const char *const colors[] = {
    "almond",    "antique",   "aquamarine", "azure",     "beige",     "bisque",    "black",
    "blanched",  "blue",      "blush",      "brown",     "burlywood", "burnished", "chartreuse",
    "chiffon",   "chocolate", "coral",      "cornflower", "cornsilk", "cream",     "cyan",
    "dark",      "deep",      "dim",        "dodger",    "drab",      "firebrick", "floral",
    "forest",    "frosted",   "gainsboro",  "ghost",     "goldenrod", "green",     "grey",
    "honeydew",  "hot",       "indian",     "ivory",     "khaki",     "lace",      "lavender",
    "lawn",      "lemon",     "light",      "lime",      "linen",     "magenta",   "maroon",
    "medium",    "metallic",  "midnight",   "mint",      "misty",     "moccasin",  "navajo",
    "navy",      "olive",     "orange",     "orchid",    "pale",      "papaya",    "peach",
    "peru",      "pink",      "plum",       "powder",    "puff",      "purple",    "red",
    "rose",      "rosy",      "royal",      "saddle",    "salmon",    "sandy",     "seashell",
    "sienna",    "sky",       "slate",      "smoke",     "snow",      "spring",    "steel",
    "tan",       "thistle",   "tomato",     "turquoise", "violet",    "wheat",     "white",
    "yellow"};
_Static_assert(NELEM(colors) == 92, "the specification lists 92 colors");
static const char *const type_s1[] = {"STANDARD", "SMALL", "MEDIUM", "LARGE", "ECONOMY", "PROMO"};
static const char *const type_s2[] = {"ANODIZED", "BURNISHED", "PLATED", "POLISHED", "BRUSHED"};
static const char *const type_s3[] = {"TIN", "NICKEL", "BRASS", "STEEL", "COPPER"};
static const char *const cont_s1[] = {"SM", "LG", "MED", "JUMBO", "WRAP"};
static const char *const cont_s2[] = {"CASE", "BOX", "BAG", "JAR", "PKG", "PACK", "CAN", "DRUM"};
static const char *const segments[] = {"AUTOMOBILE", "BUILDING", "FURNITURE", "MACHINERY",
                                       "HOUSEHOLD"};
static const char *const priorities[] = {"1-URGENT", "2-HIGH", "3-MEDIUM", "4-NOT SPECIFIED",
                                         "5-LOW"};
static const char *const instructs[] = {"DELIVER IN PERSON", "COLLECT COD", "NONE",
                                        "TAKE BACK RETURN"};
static const char *const modes[] = {"REG AIR", "AIR", "RAIL", "SHIP", "TRUCK", "MAIL", "FOB"};

/* ---------------------------------------------------------------- ember's text grammar */

static const char *const nouns[] = {
    "packages", "requests", "accounts", "deposits", "foxes", "ideas", "theodolites",
    "pinto beans", "instructions", "dependencies", "excuses", "platelets", "asymptotes",
    "courts", "dolphins", "multipliers", "sauternes", "warthogs", "frets", "dinos",
    "attainments", "somas", "patterns", "forges", "braids", "frays", "warhorses", "dugouts",
    "epitaphs", "pearls", "tithes", "waters", "orbits", "gifts", "sheaves", "depths",
    "sentiments", "decoys", "realms", "pains", "grouches", "escapades"};
static const char *const verbs[] = {
    "sleep", "wake", "are", "cajole", "haggle", "nag", "use", "boost", "affix", "detect",
    "integrate", "maintain", "nod", "was", "lose", "sublate", "solve", "thrash", "promise",
    "engage", "hinder", "print", "breach", "eat", "grow", "impress", "mold", "poach", "serve",
    "run", "dazzle", "snooze", "doze", "unwind", "kindle", "play", "hang", "believe", "doubt"};
static const char *const adjectives[] = {
    "furious", "sly", "careful", "blithe", "quick", "fluffy", "slow", "quiet", "ruthless",
    "thin", "close", "dogged", "daring", "brave", "stealthy", "permanent", "enticing", "idle",
    "busy", "regular", "final", "ironic", "even", "bold", "silent", "pending", "special",
    "express", "unusual"};
static const char *const adverbs[] = {
    "sometimes", "always", "never", "furiously", "slyly", "carefully", "blithely", "quickly",
    "fluffily", "slowly", "quietly", "ruthlessly", "thinly", "closely", "doggedly", "daringly",
    "bravely", "stealthily", "permanently", "enticingly", "idly", "busily", "regularly",
    "finally", "ironically", "evenly", "boldly", "silently"};
static const char *const preps[] = {
    "about", "above", "according to", "across", "after", "against", "along", "among",
    "around", "at", "atop", "before", "behind", "beneath", "beside", "between", "beyond", "by",
    "despite", "during", "except", "for", "from", "inside", "instead of", "into", "near",
    "of", "on", "outside", "over", "past", "since", "through", "toward", "under", "until",
    "upon", "without", "with", "within"};

#define PICK(r, list) ((list)[em_rng_below((r), NELEM(list))])

typedef struct pool_w {
    char *p;
    size_t n;
} pool_w;

static void pool_word(pool_w *w, const char *s)
{
    size_t n = strlen(s);
    if (w->n + n + 1 > POOL_BYTES)
        return;
    memcpy(w->p + w->n, s, n);
    w->n += n;
    w->p[w->n++] = ' ';
}

/* sentence = [adjective] noun [adverb] verb [preposition the [adjective] noun] '.' */
static void pool_sentence(pool_w *w, em_rng *r)
{
    if (em_rng_below(r, 2))
        pool_word(w, PICK(r, adjectives));
    pool_word(w, PICK(r, nouns));
    if (em_rng_below(r, 2))
        pool_word(w, PICK(r, adverbs));
    pool_word(w, PICK(r, verbs));
    if (em_rng_below(r, 3)) {
        pool_word(w, PICK(r, preps));
        pool_word(w, "the");
        if (em_rng_below(r, 2))
            pool_word(w, PICK(r, adjectives));
        pool_word(w, PICK(r, nouns));
    }
    if (w->n > 0 && w->n < POOL_BYTES) {
        w->p[w->n - 1] = '.';
        w->p[w->n++] = ' ';
    }
}

/* ---------------------------------------------------------------- dates */

/* Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's days_from_civil). */
static int64_t days_from_civil(int64_t y, unsigned m, unsigned d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    unsigned yoe = (unsigned)(y - era * 400);
    unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (int64_t)doe - 719468;
}

static void civil_from_days(int64_t z, int *y, unsigned *m, unsigned *d)
{
    z += 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    unsigned doe = (unsigned)(z - era * 146097);
    unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    unsigned mp = (5 * doy + 2) / 153;
    *d = doy - (153 * mp + 2) / 5 + 1;
    *m = mp < 10 ? mp + 3 : mp - 9;
    *y = (int)(yoe + era * 400 + (*m <= 2));
}

/* ---------------------------------------------------------------- the generator */

typedef struct gen {
    uint64_t seed;
    char delim;
    uint64_t nsupp, ncust, npart, norders, nclerks;
    int64_t start_day, end_day, current_day; /* 1992-01-01, 1998-12-31, 1995-06-17 */
    char *pool;                              /* POOL_BYTES of sentences */
    size_t pool_len;
    char (*dates)[10]; /* "YYYY-MM-DD" of start_day .. end_day */
} gen;

/* One unit of work: rows [lo, hi) of table t (parts for partsupp, orders for orders). */
typedef struct chunk {
    unsigned t;
    uint64_t idx, lo, hi;
} chunk;

typedef struct out {
    em_vbuf b[2];      /* b[0] for table t, b[1] lineitem (orders chunks) */
    uint64_t rows[2];
} out;

static char *put_str(char *p, const char *s)
{
    size_t n = strlen(s);
    memcpy(p, s, n);
    return p + n;
}

static char *put_u64(char *p, uint64_t v)
{
    char tmp[24];
    int n = 0;
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    while (n)
        *p++ = tmp[--n];
    return p;
}

static char *put_fixed(char *p, uint64_t v, int width)   /* zero-padded */
{
    for (int i = width - 1; i >= 0; i--, v /= 10)
        p[i] = (char)('0' + v % 10);
    return p + width;
}

static char *put_money(char *p, int64_t cents)   /* "-12.34" */
{
    if (cents < 0) {
        *p++ = '-';
        cents = -cents;
    }
    p = put_u64(p, (uint64_t)cents / 100);
    *p++ = '.';
    return put_fixed(p, (uint64_t)cents % 100, 2);
}

static char *put_date(const gen *g, char *p, int64_t day)
{
    memcpy(p, g->dates[day - g->start_day], 10);
    return p + 10;
}

/* A comment of uniform length in [lo, hi]: a substring of the pool. */
static char *put_text(const gen *g, em_rng *r, char *p, unsigned lo, unsigned hi)
{
    size_t n = lo + em_rng_below(r, hi - lo + 1);
    size_t at = em_rng_below(r, g->pool_len - n);
    memcpy(p, g->pool + at, n);
    return p + n;
}

/* A random alphanumeric string of uniform length in [lo, hi] (addresses). */
static char *put_vstr(em_rng *r, char *p, unsigned lo, unsigned hi)
{
    static const char an[] = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";
    size_t n = lo + em_rng_below(r, hi - lo + 1);
    uint64_t x = 0;
    for (size_t i = 0; i < n; i++, x >>= 6) {
        if (i % 10 == 0)
            x = em_rng_next(r);
        *p++ = an[(x & 63) % 62];
    }
    return p;
}

static char *put_phone(em_rng *r, char *p, uint64_t nation)
{
    p = put_u64(p, nation + 10);
    *p++ = '-';
    p = put_u64(p, 100 + em_rng_below(r, 900));
    *p++ = '-';
    p = put_u64(p, 100 + em_rng_below(r, 900));
    *p++ = '-';
    return put_u64(p, 1000 + em_rng_below(r, 9000));
}

static char *put_key_name(char *p, const char *prefix, uint64_t key)   /* "Supplier#000000001" */
{
    p = put_str(p, prefix);
    return key < 1000000000u ? put_fixed(p, key, 9) : put_u64(p, key);
}

static int64_t retail_cents(uint64_t pk)
{
    return (int64_t)(90000 + (pk / 10) % 20001 + 100 * (pk % 1000));
}

static uint64_t ps_supp(const gen *g, uint64_t pk, uint64_t i)
{
    uint64_t s = g->nsupp;
    return (pk + i * (s / 4 + (pk - 1) / s)) % s + 1;
}

#define D(p) (*(p)++ = g->delim)

static char *row_region(const gen *g, em_rng *r, char *p, uint64_t k)
{
    p = put_u64(p, k);
    D(p);
    p = put_str(p, regions[k]);
    D(p);
    return put_text(g, r, p, 31, 115);
}

static char *row_nation(const gen *g, em_rng *r, char *p, uint64_t k)
{
    p = put_u64(p, k);
    D(p);
    p = put_str(p, nations[k].name);
    D(p);
    p = put_u64(p, (uint64_t)nations[k].region);
    D(p);
    return put_text(g, r, p, 31, 114);
}

/* s_comment: 25-100 characters; 5 in 10,000 hold "Customer ... Complaints", as many
 * "Customer ... Recommends". */
static char *supplier_comment(const gen *g, em_rng *r, char *p)
{
    uint64_t x = em_rng_below(r, 10000);
    if (x >= 10)
        return put_text(g, r, p, 25, 100);
    p = put_text(g, r, p, 0, 30);
    p = put_str(p, "Customer ");
    p = put_text(g, r, p, 0, 30);
    return put_str(p, x < 5 ? "Complaints" : "Recommends");
}

/* The fields supplier and customer rows share: key, "NAME#k", address, nation, phone and
 * account balance, each followed by the delimiter. */
static char *put_party(const gen *g, em_rng *r, char *p, uint64_t k, const char *name)
{
    uint64_t nation = em_rng_below(r, 25);
    p = put_u64(p, k);
    D(p);
    p = put_key_name(p, name, k);
    D(p);
    p = put_vstr(r, p, 10, 40);
    D(p);
    p = put_u64(p, nation);
    D(p);
    p = put_phone(r, p, nation);
    D(p);
    p = put_money(p, (int64_t)em_rng_below(r, 1099999) - 99999);
    D(p);
    return p;
}

static char *row_supplier(const gen *g, em_rng *r, char *p, uint64_t k)
{
    p = put_party(g, r, p, k, "Supplier#");
    return supplier_comment(g, r, p);
}

static char *row_customer(const gen *g, em_rng *r, char *p, uint64_t k)
{
    p = put_party(g, r, p, k, "Customer#");
    p = put_str(p, PICK(r, segments));
    D(p);
    return put_text(g, r, p, 29, 116);
}

static char *row_part(const gen *g, em_rng *r, char *p, uint64_t k)
{
    unsigned pick[5], m = 1 + (unsigned)em_rng_below(r, 5);
    for (unsigned i = 0; i < 5; i++) {   /* five distinct colors */
        bool dup;
        do {
            pick[i] = (unsigned)em_rng_below(r, NELEM(colors));
            dup = false;
            for (unsigned j = 0; j < i; j++)
                dup |= pick[j] == pick[i];
        } while (dup);
    }
    p = put_u64(p, k);
    D(p);
    for (unsigned i = 0; i < 5; i++) {
        if (i)
            *p++ = ' ';
        p = put_str(p, colors[pick[i]]);
    }
    D(p);
    p = put_str(p, "Manufacturer#");
    p = put_u64(p, m);
    D(p);
    p = put_str(p, "Brand#");
    p = put_u64(p, m * 10 + 1 + em_rng_below(r, 5));
    D(p);
    p = put_str(p, PICK(r, type_s1));
    *p++ = ' ';
    p = put_str(p, PICK(r, type_s2));
    *p++ = ' ';
    p = put_str(p, PICK(r, type_s3));
    D(p);
    p = put_u64(p, 1 + em_rng_below(r, 50));
    D(p);
    p = put_str(p, PICK(r, cont_s1));
    *p++ = ' ';
    p = put_str(p, PICK(r, cont_s2));
    D(p);
    p = put_money(p, retail_cents(k));
    D(p);
    return put_text(g, r, p, 5, 22);
}

static char *row_partsupp(const gen *g, em_rng *r, char *p, uint64_t pk, uint64_t i)
{
    p = put_u64(p, pk);
    D(p);
    p = put_u64(p, ps_supp(g, pk, i));
    D(p);
    p = put_u64(p, 1 + em_rng_below(r, 9999));
    D(p);
    p = put_money(p, 100 + (int64_t)em_rng_below(r, 99901));
    D(p);
    return put_text(g, r, p, 49, 198);
}

typedef struct line {
    uint64_t part, supp;
    unsigned qty, disc, tax;   /* discount and tax in hundredths */
    int64_t ship, commit, receipt, ext_cents;
    char flag, status;
} line;

static void make_line(const gen *g, em_rng *r, int64_t odate, line *l)
{
    l->part = 1 + em_rng_below(r, g->npart);
    l->supp = ps_supp(g, l->part, em_rng_below(r, 4));
    l->qty = 1 + (unsigned)em_rng_below(r, 50);
    l->disc = (unsigned)em_rng_below(r, 11);
    l->tax = (unsigned)em_rng_below(r, 9);
    l->ship = odate + 1 + (int64_t)em_rng_below(r, 121);
    l->commit = odate + 30 + (int64_t)em_rng_below(r, 61);
    l->receipt = l->ship + 1 + (int64_t)em_rng_below(r, 30);
    l->flag = l->receipt <= g->current_day ? (em_rng_below(r, 2) ? 'R' : 'A') : 'N';
    l->status = l->ship > g->current_day ? 'O' : 'F';
    l->ext_cents = (int64_t)l->qty * retail_cents(l->part);
}

static char *row_line(const gen *g, em_rng *r, char *p, uint64_t okey, unsigned no,
                      const line *l)
{
    p = put_u64(p, okey);
    D(p);
    p = put_u64(p, l->part);
    D(p);
    p = put_u64(p, l->supp);
    D(p);
    p = put_u64(p, no);
    D(p);
    p = put_u64(p, l->qty);
    D(p);
    p = put_money(p, l->ext_cents);
    D(p);
    p = put_money(p, l->disc);
    D(p);
    p = put_money(p, l->tax);
    D(p);
    *p++ = l->flag;
    D(p);
    *p++ = l->status;
    D(p);
    p = put_date(g, p, l->ship);
    D(p);
    p = put_date(g, p, l->commit);
    D(p);
    p = put_date(g, p, l->receipt);
    D(p);
    p = put_str(p, PICK(r, instructs));
    D(p);
    p = put_str(p, PICK(r, modes));
    D(p);
    return put_text(g, r, p, 10, 43);
}

/* The i-th order (0-based) and its lines, into o->b[0] and o->b[1] (room reserved). */
static void gen_order(const gen *g, em_rng *r, uint64_t i, out *o)
{
    uint64_t okey = (i / 8) * 32 + i % 8 + 1;
    uint64_t with_orders = g->ncust - g->ncust / 3;   /* keys not divisible by 3 */
    uint64_t c = em_rng_below(r, with_orders);
    uint64_t ckey = (c / 2) * 3 + c % 2 + 1;
    int64_t odate = g->start_day + (int64_t)em_rng_below(r, (uint64_t)(g->end_day - 151 - g->start_day + 1));
    unsigned n = 1 + (unsigned)em_rng_below(r, 7), nf = 0;
    line ls[7];
    int64_t total = 0;

    for (unsigned j = 0; j < n; j++) {
        make_line(g, r, odate, &ls[j]);
        /* cents * (100 - disc) * (100 + tax) / 10^4, rounded half up */
        total += (ls[j].ext_cents * (100 - ls[j].disc) * (100 + ls[j].tax) + 5000) / 10000;
        nf += ls[j].status == 'F';
    }
    char *p = (char *)o->b[0].data + o->b[0].len;
    p = put_u64(p, okey);
    D(p);
    p = put_u64(p, ckey);
    D(p);
    *p++ = nf == n ? 'F' : nf == 0 ? 'O' : 'P';
    D(p);
    p = put_money(p, total);
    D(p);
    p = put_date(g, p, odate);
    D(p);
    p = put_str(p, PICK(r, priorities));
    D(p);
    p = put_key_name(p, "Clerk#", 1 + em_rng_below(r, g->nclerks));
    D(p);
    *p++ = '0';
    D(p);
    p = put_text(g, r, p, 19, 78);
    *p++ = '\n';
    o->b[0].len = (size_t)((uint8_t *)p - o->b[0].data);
    o->rows[0]++;
    p = (char *)o->b[1].data + o->b[1].len;
    for (unsigned j = 0; j < n; j++) {
        p = row_line(g, r, p, okey, j + 1, &ls[j]);
        *p++ = '\n';
    }
    o->b[1].len = (size_t)((uint8_t *)p - o->b[1].data);
    o->rows[1] += n;
}

static int fill_chunk(const gen *g, const chunk *c, out *o)
{
    em_rng r;
    uint64_t n = c->hi - c->lo;
    size_t per = c->t == T_PARTSUPP ? 4 * ROW_MAX : ROW_MAX;

    em_rng_seed(&r, em_mix64(em_mix64(g->seed ^ (0x7470636800ULL + c->t)) + c->idx));
    for (int b = 0; b < 2; b++) {
        o->b[b].len = 0;
        o->rows[b] = 0;
    }
    if (em_vbuf_reserve(&o->b[0], n * per) < 0 ||
        (c->t == T_ORDERS && em_vbuf_reserve(&o->b[1], n * 7 * ROW_MAX) < 0))
        return EM_ENOMEM;
    for (uint64_t i = c->lo; i < c->hi; i++) {
        if (c->t == T_ORDERS) {
            gen_order(g, &r, i, o);
            continue;
        }
        char *p = (char *)o->b[0].data + o->b[0].len;
        switch (c->t) {
        case T_REGION: p = row_region(g, &r, p, i); break;
        case T_NATION: p = row_nation(g, &r, p, i); break;
        case T_SUPPLIER: p = row_supplier(g, &r, p, i + 1); break;
        case T_CUSTOMER: p = row_customer(g, &r, p, i + 1); break;
        case T_PART: p = row_part(g, &r, p, i + 1); break;
        default: /* T_PARTSUPP: four rows per part */
            for (uint64_t s = 0; s < 4; s++) {
                p = row_partsupp(g, &r, p, i + 1, s);
                if (s < 3)
                    *p++ = '\n';
            }
            o->rows[0] += 3;
        }
        *p++ = '\n';
        o->b[0].len = (size_t)((uint8_t *)p - o->b[0].data);
        o->rows[0]++;
    }
    return 0;
}

/* ---------------------------------------------------------------- setup */

static int gen_init(gen *g, const em_sql_tpch_opts *o, em_err *err)
{
    memset(g, 0, sizeof *g);
    g->seed = o->seed;
    g->delim = o->delim ? o->delim : '|';
    g->nsupp = (uint64_t)llround(o->sf * 10000);
    g->ncust = (uint64_t)llround(o->sf * 150000);
    g->npart = (uint64_t)llround(o->sf * 200000);
    g->norders = (uint64_t)llround(o->sf * 1500000);
    g->nclerks = o->sf * 1000 < 1 ? 1 : (uint64_t)llround(o->sf * 1000);
    g->start_day = days_from_civil(1992, 1, 1);
    g->end_day = days_from_civil(1998, 12, 31);
    g->current_day = days_from_civil(1995, 6, 17);
    g->pool = em_malloc(POOL_BYTES);
    g->dates = em_malloc((size_t)(g->end_day - g->start_day + 1) * sizeof *g->dates);
    if (g->pool == NULL || g->dates == NULL)
        return em_err_set(err, EM_ENOMEM, "out of memory (text pool)");
    for (int64_t d = g->start_day; d <= g->end_day; d++) {
        int y;
        unsigned m, dd;
        char *p = g->dates[d - g->start_day];
        civil_from_days(d, &y, &m, &dd);
        p = put_fixed(p, (uint64_t)y, 4);
        *p++ = '-';
        p = put_fixed(p, m, 2);
        *p++ = '-';
        put_fixed(p, dd, 2);
    }
    em_rng r;
    pool_w w = {g->pool, 0};
    em_rng_seed(&r, em_mix64(g->seed ^ 0x706f6f6cULL));
    while (w.n + 200 < POOL_BYTES)   /* no sentence is longer than 200 bytes */
        pool_sentence(&w, &r);
    g->pool_len = w.n;
    return 0;
}

static void gen_destroy(gen *g)
{
    em_free(g->pool);
    em_free(g->dates);
}

/* The chunks of every table, in file order; *n set. */
static chunk *plan_chunks(const gen *g, size_t *n)
{
    const uint64_t units[T_ORDERS + 1] = {5, 25, g->nsupp, g->ncust, g->npart, g->npart,
                                          g->norders};
    size_t total = 0, k = 0;
    for (unsigned t = 0; t <= T_ORDERS; t++) {
        uint64_t per = t == T_ORDERS ? ORDERS_PER_CHUNK : ROWS_PER_CHUNK;
        total += (size_t)((units[t] + per - 1) / per);
    }
    chunk *c = em_malloc(total * sizeof *c);
    if (c == NULL)
        return NULL;
    for (unsigned t = 0; t <= T_ORDERS; t++) {
        uint64_t per = t == T_ORDERS ? ORDERS_PER_CHUNK : ROWS_PER_CHUNK;
        for (uint64_t lo = 0, i = 0; lo < units[t]; lo += per, i++)
            c[k++] = (chunk){t, i, lo, lo + per < units[t] ? lo + per : units[t]};
    }
    *n = total;
    return c;
}

/* ---------------------------------------------------------------- workers and the writer */

/* Shared by the workers and the writer; every field below `lock` is guarded by it.
 * Slot k % window holds chunk k from the time a worker takes it until the writer has
 * written it. */
typedef struct run {
    const gen *g;
    const chunk *chunks;
    size_t nchunks, window;
    out *slots;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    size_t next;     /* next chunk to take */
    size_t written;  /* chunks written */
    bool *done;      /* per slot: filled, waiting for the writer */
    bool stop;       /* the writer failed or a worker ran out of memory */
    int worker_rc;
} run;

static void *worker(void *arg)
{
    run *u = arg;
    pthread_mutex_lock(&u->lock);
    while (!u->stop && u->next < u->nchunks) {
        if (u->next >= u->written + u->window) {
            pthread_cond_wait(&u->cond, &u->lock);
            continue;
        }
        size_t k = u->next++;
        pthread_mutex_unlock(&u->lock);
        int rc = fill_chunk(u->g, &u->chunks[k], &u->slots[k % u->window]);
        pthread_mutex_lock(&u->lock);
        if (rc < 0) {
            u->stop = true;
            u->worker_rc = rc;
        }
        u->done[k % u->window] = true;
        pthread_cond_broadcast(&u->cond);
    }
    pthread_mutex_unlock(&u->lock);
    return NULL;
}

static int write_all(int fd, const uint8_t *p, size_t n, const char *path, em_err *err)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return em_err_set(err, EM_EIO, "%s: write: %s", path,
                              w < 0 ? strerror(errno) : "no progress");
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

typedef struct files {
    char *final[EM_SQL_TPCH_NTABLES + 1], *tmp[EM_SQL_TPCH_NTABLES + 1]; /* + schema.sql */
    int fd[EM_SQL_TPCH_NTABLES];
} files;

/* The writer: chunks in order into their files. */
static int write_chunks(run *u, files *f, em_sql_tpch_stats *st, em_err *err)
{
    int rc = 0;
    for (size_t k = 0; k < u->nchunks && rc == 0; k++) {
        out *o = &u->slots[k % u->window];
        unsigned t = u->chunks[k].t;
        pthread_mutex_lock(&u->lock);
        while (!u->done[k % u->window] && !u->stop)
            pthread_cond_wait(&u->cond, &u->lock);
        if (u->stop)
            rc = em_err_set(err, u->worker_rc ? u->worker_rc : EM_EIO, "out of memory");
        pthread_mutex_unlock(&u->lock);
        for (unsigned b = 0; b < 2 && rc == 0; b++) {
            unsigned ft = b ? T_LINEITEM : t;
            if (b == 1 && t != T_ORDERS)
                break;
            rc = write_all(f->fd[ft], o->b[b].data, o->b[b].len, f->tmp[ft], err);
            st->rows[ft] += o->rows[b];
            st->bytes += o->b[b].len;
        }
        pthread_mutex_lock(&u->lock);
        u->done[k % u->window] = false;
        u->written = k + 1;
        if (rc < 0)
            u->stop = true;
        pthread_cond_broadcast(&u->cond);
        pthread_mutex_unlock(&u->lock);
    }
    return rc;
}

static int run_workers(const gen *g, uint32_t nthreads, files *f, em_sql_tpch_stats *st,
                       em_err *err)
{
    run u = {.g = g};
    pthread_t th[MAX_THREADS];
    uint32_t started = 0;
    int rc = 0;

    if ((u.chunks = plan_chunks(g, &u.nchunks)) == NULL)
        return em_err_set(err, EM_ENOMEM, "out of memory");
    u.window = 2 * (size_t)nthreads;
    u.slots = em_calloc(u.window, sizeof *u.slots);
    u.done = em_calloc(u.window, sizeof *u.done);
    if (u.slots == NULL || u.done == NULL) {
        rc = em_err_set(err, EM_ENOMEM, "out of memory");
        goto out;
    }
    pthread_mutex_init(&u.lock, NULL);
    pthread_cond_init(&u.cond, NULL);
    for (; started < nthreads; started++)
        if (pthread_create(&th[started], NULL, worker, &u) != 0)
            break;
    if (started == 0)
        rc = em_err_set(err, EM_ENOMEM, "cannot start a worker thread");
    else
        rc = write_chunks(&u, f, st, err);
    pthread_mutex_lock(&u.lock);
    u.stop = true;
    pthread_cond_broadcast(&u.cond);
    pthread_mutex_unlock(&u.lock);
    for (uint32_t i = 0; i < started; i++)
        pthread_join(th[i], NULL);
    pthread_cond_destroy(&u.cond);
    pthread_mutex_destroy(&u.lock);
out:
    for (size_t i = 0; u.slots != NULL && i < u.window; i++) {
        em_vbuf_destroy(&u.slots[i].b[0]);
        em_vbuf_destroy(&u.slots[i].b[1]);
    }
    em_free(u.slots);
    em_free(u.done);
    em_free((void *)u.chunks);
    return rc;
}

/* ---------------------------------------------------------------- files */

/* schema.sql: one CREATE TABLE ... USING csv per table, paths absolute (quotes doubled). */
static int write_schema(const char *absdir, const em_sql_tpch_opts *o, char delim,
                        const files *f, em_err *err)
{
    em_vbuf b;
    int rc = 0, fd;

    em_vbuf_init(&b);
    bool oom = em_vbuf_printf(&b, "-- TPC-H-shaped tables written by `ember gen tpch --sf %g --seed %llu"
                       " --delimiter '%c'` (docs/sql-tpch.md).\n",
                   o->sf, (unsigned long long)o->seed, delim) < 0;
    for (unsigned t = 0; t < EM_SQL_TPCH_NTABLES; t++) {
        oom |= em_vbuf_printf(&b, "CREATE TABLE %s (%s)\n  USING csv OPTIONS (path '",
                              table_names[t], table_cols[t]) < 0;
        for (const char *s = absdir; *s; s++) {
            oom |= em_vbuf_append(&b, s, 1) < 0;
            if (*s == '\'')
                oom |= em_vbuf_append(&b, s, 1) < 0;
        }
        oom |= em_vbuf_printf(&b, "/%s.tbl', header 'false', delimiter '%c');\n",
                              table_names[t], delim) < 0;
    }
    if (oom)
        rc = em_err_set(err, EM_ENOMEM, "out of memory");
    if (rc == 0) {
        fd = open(f->tmp[EM_SQL_TPCH_NTABLES], O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        if (fd < 0)
            rc = em_err_set(err, EM_EIO, "%s: %s", f->tmp[EM_SQL_TPCH_NTABLES], strerror(errno));
        else {
            rc = write_all(fd, b.data, b.len, f->tmp[EM_SQL_TPCH_NTABLES], err);
            if (close(fd) != 0 && rc == 0)
                rc = em_err_set(err, EM_EIO, "%s: close: %s", f->tmp[EM_SQL_TPCH_NTABLES],
                                strerror(errno));
        }
    }
    em_vbuf_destroy(&b);
    return rc;
}

static int make_dir(const char *dir, em_err *err)
{
    struct stat sb;
    if (mkdir(dir, 0755) == 0 || (errno == EEXIST && stat(dir, &sb) == 0 && S_ISDIR(sb.st_mode)))
        return 0;
    return em_err_set(err, EM_EIO, "%s: cannot create the directory: %s", dir,
                      errno == EEXIST ? "a file of that name exists" : strerror(errno));
}

static int open_files(const char *dir, files *f, em_err *err)
{
    for (unsigned t = 0; t <= EM_SQL_TPCH_NTABLES; t++) {
        const char *name = t < EM_SQL_TPCH_NTABLES ? table_names[t] : "schema";
        const char *ext = t < EM_SQL_TPCH_NTABLES ? "tbl" : "sql";
        f->final[t] = em_xasprintf("%s/%s.%s", dir, name, ext);
        f->tmp[t] = em_xasprintf("%s/%s.%s.tmp.%ld", dir, name, ext, (long)getpid());
        if (t == EM_SQL_TPCH_NTABLES)
            break;
        f->fd[t] = open(f->tmp[t], O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        if (f->fd[t] < 0)
            return em_err_set(err, EM_EIO, "%s: %s", f->tmp[t], strerror(errno));
    }
    return 0;
}

/* Closes every file; on success renames each onto its final name (tables, then the
 * schema), else removes the temporary files. */
static int close_files(files *f, int rc, em_err *err)
{
    for (unsigned t = 0; t < EM_SQL_TPCH_NTABLES; t++)
        if (f->fd[t] >= 0 && close(f->fd[t]) != 0 && rc == 0)
            rc = em_err_set(err, EM_EIO, "%s: close: %s", f->tmp[t], strerror(errno));
    for (unsigned t = 0; t <= EM_SQL_TPCH_NTABLES && rc == 0; t++)
        if (rename(f->tmp[t], f->final[t]) != 0)
            rc = em_err_set(err, EM_EIO, "%s: rename: %s", f->final[t], strerror(errno));
    for (unsigned t = 0; t <= EM_SQL_TPCH_NTABLES; t++) {
        if (rc < 0 && f->tmp[t] != NULL)
            unlink(f->tmp[t]);
        em_free(f->tmp[t]);
        em_free(f->final[t]);
    }
    return rc;
}

const char *em_sql_tpch_table_name(unsigned i)
{
    return i < EM_SQL_TPCH_NTABLES ? table_names[i] : NULL;
}

static uint32_t default_threads(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n < 1 ? 1 : n > 8 ? 8 : (uint32_t)n;
}

int em_sql_tpch_generate(const em_sql_tpch_opts *o, em_sql_tpch_stats *stats, em_err *err)
{
    em_sql_tpch_stats st = {0};
    double t0 = em_now_s();
    files f = {.fd = {-1, -1, -1, -1, -1, -1, -1, -1}};
    char *abs = NULL;
    gen g;
    int rc;

    if (!(o->sf >= EM_SQL_TPCH_MIN_SF && o->sf <= EM_SQL_TPCH_MAX_SF))
        return em_err_set(err, EM_EINVAL, "scale factor %g out of range [%g, %g]", o->sf,
                          EM_SQL_TPCH_MIN_SF, EM_SQL_TPCH_MAX_SF);
    if (o->delim != 0 && o->delim != '|' && o->delim != ',')
        return em_err_set(err, EM_EINVAL, "delimiter '%c': expected '|' or ','", o->delim);
    if (o->threads > MAX_THREADS)
        return em_err_set(err, EM_EINVAL, "%u threads (at most %u)", o->threads, MAX_THREADS);
    if ((rc = make_dir(o->out_dir, err)) < 0)
        return rc;
    if ((abs = realpath(o->out_dir, NULL)) == NULL)
        return em_err_set(err, EM_EIO, "%s: %s", o->out_dir, strerror(errno));
    if ((rc = gen_init(&g, o, err)) == 0 && (rc = open_files(abs, &f, err)) == 0 &&
        (rc = run_workers(&g, o->threads ? o->threads : default_threads(), &f, &st, err)) == 0)
        rc = write_schema(abs, o, g.delim, &f, err);
    rc = close_files(&f, rc, err);
    gen_destroy(&g);
    free(abs);
    st.seconds = em_now_s() - t0;
    if (stats != NULL)
        *stats = st;
    return rc;
}
