/* tests/unit/linalg/test_parse_num.c - the loaders' number scanner (parse.c) against strtod:
 * random decimal strings of every shape (signs, leading and trailing zeros, up to 25
 * integer and fraction digits, exponents up to 400), random doubles printed the ways files
 * hold them (%.17g, %.4f, %g, %.3e), and edge inputs (subnormals, the largest double,
 * overflow, 2^53 + 1, halfway cases); the value is strtod's to the bit and the end is where
 * strtod stops, or NULL exactly when strtod finds no finite number. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mllib/linalg/linalg_int.h"

/* The scanner agrees with strtod on s (NUL-terminated). */
static void check(const char *s)
{
    double v = NAN, want;
    char *e;
    const char *end = s + strlen(s), *got = em__ml_scan_double(s, end, &v);
    if (strpbrk(s, "xXiInN")) {   /* strtod's hex, inf and nan: never a whole number here */
        cr_assert(!em__ml_parse_double(s, end, &v), "'%s' taken", s);
        return;
    }
    want = strtod(s, &e);
    if (e == s || !isfinite(want)) {
        cr_assert_null(got, "'%s': scanned %.17g, strtod %.17g", s, v, want);
        return;
    }
    cr_assert_not_null(got, "'%s': not scanned (strtod %.17g)", s, want);
    cr_assert_eq(got, e, "'%s': ends at %td, strtod at %td", s, got - s, e - s);
    cr_assert(memcmp(&v, &want, 8) == 0, "'%s': %.17g, strtod %.17g", s, v, want);
    cr_assert_eq(em__ml_parse_double(s, end, &v), e == end, "'%s'", s);
}

static void digits(em_rng *g, char **p, int n)
{
    for (int i = 0; i < n; i++)
        *(*p)++ = (char)('0' + em_rng_below(g, 10));
}

Test(parse_num, random_decimal_strings)
{
    em_rng g;
    em_rng_seed(&g, 2026);
    char buf[96];
    for (int t = 0; t < 200000; t++) {
        char *p = buf;
        uint64_t r = em_rng_below(&g, 4);
        if (r == 1)
            *p++ = '-';
        else if (r == 2)
            *p++ = '+';
        if (em_rng_below(&g, 4) == 0)   /* leading zeros */
            for (int z = (int)em_rng_below(&g, 4); z >= 0; z--)
                *p++ = '0';
        digits(&g, &p, (int)em_rng_below(&g, 26));
        if (em_rng_below(&g, 3) != 0) {
            *p++ = '.';
            if (em_rng_below(&g, 4) == 0)
                for (int z = (int)em_rng_below(&g, 30); z >= 0; z--)
                    *p++ = '0';
            digits(&g, &p, (int)em_rng_below(&g, 26));
        }
        if (em_rng_below(&g, 3) == 0) {
            *p++ = em_rng_below(&g, 2) ? 'e' : 'E';
            r = em_rng_below(&g, 3);
            if (r)
                *p++ = r == 1 ? '-' : '+';
            p += sprintf(p, "%d", (int)em_rng_below(&g, em_rng_below(&g, 2) ? 25 : 401));
        }
        if (em_rng_below(&g, 8) == 0)   /* something after the number */
            *p++ = em_rng_below(&g, 2) ? ' ' : ':';
        *p = 0;
        check(buf);
    }
}

Test(parse_num, printed_doubles)
{
    em_rng g;
    em_rng_seed(&g, 7);
    const char *fmts[] = {"%.17g", "%.4f", "%g", "%.3e", "%.15g"};
    char buf[400];
    for (int t = 0; t < 100000; t++) {
        double x;
        uint64_t bits = em_rng_next(&g);
        memcpy(&x, &bits, 8);
        if (!isfinite(x) || em_rng_below(&g, 2))
            x = em_rng_gaussian(&g) * pow(10, (double)em_rng_below(&g, 40) - 20);
        for (size_t f = 0; f < sizeof fmts / sizeof *fmts; f++) {
            snprintf(buf, sizeof buf, fmts[f], x);
            if (strlen(buf) < 120)
                check(buf);
        }
    }
}

Test(parse_num, edge_inputs)
{
    const char *in[] = {"0", "-0", "+0", "0.", ".0", "00000", "0e0", "1e0", "1e-0", "1e+0",
                        "4.9406564584124654e-324", "2.4703282292062328e-324",
                        "2.4703282292062327e-324", "2.2250738585072011e-308",
                        "2.2250738585072014e-308", "1.7976931348623157e308",
                        "1.7976931348623158e308", "1.7976931348623159e308", "1e308", "1e309",
                        "-1e309", "1e-400", "9007199254740992", "9007199254740993",
                        "9007199254740994", "9007199254740995", "18446744073709551615",
                        "18446744073709551616", "9999999999999999999", "99999999999999999999",
                        "0.1", "0.2", "0.3", "0.30000000000000004", "1e22", "1e23", "1e-22",
                        "1e-23", "123456789e-22", "8.98846567431158e307",
                        "1.00000000000000011102230246251565404236316680908203125",
                        "1.00000000000000011102230246251565404236316680908203124",
                        "1.00000000000000011102230246251565404236316680908203126",
                        "-1.5E-7", "1e", "1e+", "1.5x", "1.5 2", "-", "+", ".", "-.", "e5",
                        "1..2", "1.2.3", "--1", "+-1", "0x10", "inf", "nan", "1,5",
                        "0.000000000000000000000000000000000000000000001",
                        "100000000000000000000000000000000000000000000000000000000000"};
    for (size_t i = 0; i < sizeof in / sizeof *in; i++)
        check(in[i]);
    double v;
    const char *s = "3.25:7";
    cr_assert_eq(em__ml_scan_double(s, s + 3, &v), s + 3);   /* stops at end, not at NUL */
    cr_assert_eq(v, 3.2);
    cr_assert(em__ml_parse_double("12", (const char *)"12" + 2, &v) && v == 12);
    cr_assert(!em__ml_parse_double("12 ", (const char *)"12 " + 3, &v));
}
