/*
 * INCRBYFLOAT's arithmetic, exactly as Redis 7 does it: the platform's
 * `long double` (x87 80-bit on x86_64), parsed with strtold and printed with
 * "%.17Lf" (Redis's string2ld and ld2string in LD_STR_HUMAN mode). Rust has
 * no `long double`, and the digits Redis replies with ("0.1" + "5.0e3" is
 * "5000.10000000000000009") depend on it, so this one function is C.
 * Pure: no allocation, no I/O, no global state but errno.
 */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Redis's MAX_LONG_DOUBLE_CHARS: longest text accepted, and the reply buffer. */
#define MAX_LONG_DOUBLE_CHARS (5 * 1024)

/* Redis 7.0.15's string2ld: 1 and *dp on success, 0 when `s` is not a float. */
static int string2ld(const char *s, size_t slen, long double *dp) {
    char buf[MAX_LONG_DOUBLE_CHARS];
    long double value;
    char *eptr;

    if (slen == 0 || slen >= sizeof(buf)) return 0;
    memcpy(buf, s, slen);
    buf[slen] = '\0';

    errno = 0;
    value = strtold(buf, &eptr);
    /* The whole text must be the number (an embedded NUL is not). */
    if (isspace((unsigned char)buf[0]) || (size_t)(eptr - buf) != slen ||
        (errno == ERANGE && (value == HUGE_VALL || value == -HUGE_VALL || value == 0)) ||
        isnan(value))
        return 0;
    *dp = value;
    return 1;
}

/*
 * `current + incr` as Redis's INCRBYFLOAT writes it, into `out` (at least
 * COREKV_FLOAT_OUT bytes). Returns the length written (> 0), -1 when either
 * text is not a valid float, -2 when the sum is NaN or infinite.
 */
long corekv_incrbyfloat(const char *current, size_t current_len, const char *incr,
                        size_t incr_len, char *out, size_t out_len) {
    long double value, delta;
    if (!string2ld(current, current_len, &value) || !string2ld(incr, incr_len, &delta))
        return -1;
    value += delta;
    if (isnan(value) || isinf(value)) return -2;
    /* ld2string(LD_STR_HUMAN): 17 decimals, then trailing zeros and the dot
     * dropped, and "-0" written "0". */
    int l = snprintf(out, out_len, "%.17Lf", value);
    if (l < 0 || (size_t)l + 1 > out_len) return -1;
    if (strchr(out, '.') != NULL) {
        char *p = out + l - 1;
        while (*p == '0') {
            p--;
            l--;
        }
        if (*p == '.') l--;
    }
    if (l == 2 && out[0] == '-' && out[1] == '0') {
        out[0] = '0';
        l = 1;
    }
    return l;
}
