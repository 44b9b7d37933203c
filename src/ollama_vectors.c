/*-------------------------------------------------------------------------
 *
 * ollama_vectors.c
 *		Fast paths for reading the two replies that dominate call time:
 *		/api/embed (vectors) and /api/generate (the "response" text).
 *
 * A batch of embeddings is mostly numbers, and building a jansson tree of
 * them only to copy each into a real[] costs more backend time than the
 * HTTP exchange itself.  This reader scans the reply once and writes the
 * vectors straight into arrays.  It accepts only the well-formed common
 * case: anything unexpected (an "error" member, a wrong count, a NaN, a
 * syntax error, an escaped member name, deep nesting) makes it give up,
 * and the caller then reads the reply with the general jansson path, whose
 * checks produce the precise error message.  So the fast path never has to
 * explain a failure.  The one leniency: members other than the one read
 * are checked for JSON syntax only, not for valid UTF-8 or duplicate keys,
 * since nothing of them is used.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <ctype.h>
#include <float.h>
#include <math.h>

#include "catalog/pg_type.h"
#include "utils/array.h"

#include "ollama.h"

/* Nesting skipped inside other members before giving up. */
#define MAX_SKIP_DEPTH	32

typedef struct Scanner
{
	const char *p;
	const char *end;
} Scanner;

static inline void
skip_ws(Scanner *s)
{
	while (s->p < s->end &&
		   (*s->p == ' ' || *s->p == '\t' || *s->p == '\n' || *s->p == '\r'))
		s->p++;
}

static inline bool
expect(Scanner *s, char c)
{
	skip_ws(s);
	if (s->p < s->end && *s->p == c)
	{
		s->p++;
		return true;
	}
	return false;
}

/*
 * A string; on success *start and *len give its raw content between the quotes.
 * Escapes are checked for shape, not decoded; "*escaped" says if any.
 */
static bool
scan_string(Scanner *s, const char **start, size_t *len, bool *escaped)
{
	const char *q;

	skip_ws(s);
	if (s->p >= s->end || *s->p != '"')
		return false;
	q = ++s->p;
	*escaped = false;
	while (s->p < s->end && *s->p != '"')
	{
		unsigned char c = (unsigned char) *s->p;

		if (c < 0x20)
			return false;
		if (c == '\\')
		{
			*escaped = true;
			if (s->p + 1 >= s->end || strchr("\"\\/bfnrtu", s->p[1]) == NULL)
				return false;
			if (s->p[1] == 'u')
			{
				int			i;

				if (s->end - s->p < 6)
					return false;
				for (i = 2; i < 6; i++)
					if (!isxdigit((unsigned char) s->p[i]))
						return false;
				s->p += 6;
			}
			else
				s->p += 2;
			continue;
		}
		s->p++;
	}
	if (s->p >= s->end)
		return false;
	*start = q;
	*len = s->p - q;
	s->p++;
	return true;
}

/* 10^0 .. 10^22: exact as doubles */
static const double exact_pow10[] = {
	1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11,
	1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22
};

/*
 * A JSON number, checked against the JSON grammar (so no hex, "inf" or
 * "nan") and converted.  An embedding's numbers have few digits: when the
 * digits make an integer below 10^15 and the decimal exponent is within
 * 22, the value is that integer times or divided by an exact power of
 * ten, one correctly rounded IEEE operation, so exactly what strtod
 * returns at a fraction of its cost.  Anything else goes to strtod; the
 * backend runs with LC_NUMERIC=C, so the decimal point is '.'.
 */
static bool
scan_number(Scanner *s, double *value)
{
	const char *q = s->p;
	char	   *endp;
	bool		negative = false;
	uint64		m = 0;
	int			sig = 0;		/* significant digits in m */
	int			exp10 = 0;
	bool		exact = true;

	if (q < s->end && *q == '-')
	{
		negative = true;
		q++;
	}
	if (q >= s->end || !isdigit((unsigned char) *q))
		return false;
	if (*q == '0')
		q++;
	else
		while (q < s->end && isdigit((unsigned char) *q))
		{
			if (sig < 15)
				m = m * 10 + (*q - '0');
			else
				exact = false;
			sig++;
			q++;
		}
	if (q < s->end && *q == '.')
	{
		q++;
		if (q >= s->end || !isdigit((unsigned char) *q))
			return false;
		while (q < s->end && isdigit((unsigned char) *q))
		{
			if (m != 0 || *q != '0')
			{
				if (sig < 15)
					m = m * 10 + (*q - '0');
				else
					exact = false;
				sig++;
			}
			exp10--;
			q++;
		}
	}
	if (q < s->end && (*q == 'e' || *q == 'E'))
	{
		bool		eneg = false;
		int			e = 0;

		q++;
		if (q < s->end && (*q == '+' || *q == '-'))
			eneg = (*q++ == '-');
		if (q >= s->end || !isdigit((unsigned char) *q))
			return false;
		while (q < s->end && isdigit((unsigned char) *q))
		{
			if (e < 10000)
				e = e * 10 + (*q - '0');
			q++;
		}
		exp10 += eneg ? -e : e;
	}
	if (exact && exp10 >= -22 && exp10 <= 22)
	{
		double		d = (double) m;

		d = exp10 < 0 ? d / exact_pow10[-exp10] : d * exact_pow10[exp10];
		*value = negative ? -d : d;
		s->p = q;
		return true;
	}
	/* the reply buffer is NUL-terminated, so strtod cannot run past it */
	*value = strtod(s->p, &endp);
	if (endp != q)
		return false;
	s->p = q;
	return true;
}

static bool
scan_literal(Scanner *s, const char *word)
{
	size_t		n = strlen(word);

	if ((size_t) (s->end - s->p) < n || memcmp(s->p, word, n) != 0)
		return false;
	s->p += n;
	return true;
}

/* Step over one value of any kind, checking its syntax. */
static bool
skip_value(Scanner *s, int depth)
{
	const char *str;
	size_t		len;
	bool		esc;
	double		d;

	if (depth > MAX_SKIP_DEPTH)
		return false;
	skip_ws(s);
	if (s->p >= s->end)
		return false;
	switch (*s->p)
	{
		case '"':
			return scan_string(s, &str, &len, &esc);
		case '{':
			s->p++;
			if (expect(s, '}'))
				return true;
			do
			{
				if (!scan_string(s, &str, &len, &esc) || !expect(s, ':') ||
					!skip_value(s, depth + 1))
					return false;
			} while (expect(s, ','));
			return expect(s, '}');
		case '[':
			s->p++;
			if (expect(s, ']'))
				return true;
			do
			{
				if (!skip_value(s, depth + 1))
					return false;
			} while (expect(s, ','));
			return expect(s, ']');
		case 't':
			return scan_literal(s, "true");
		case 'f':
			return scan_literal(s, "false");
		case 'n':
			return scan_literal(s, "null");
		default:
			return scan_number(s, &d);
	}
}

/*
 * The "embeddings" array: exactly n non-empty arrays of finite numbers
 * within float4 range, all of length *dim (set from the first when 0).
 */
static bool
scan_vectors(Scanner *s, int n, int *dim, Datum *out)
{
	float4	   *buf = NULL;
	int			cap = 0;
	int			count = 0;

	if (!expect(s, '['))
		return false;
	if (expect(s, ']'))
		return n == 0;
	do
	{
		int			len = 0;
		ArrayType  *arr;

		if (count >= n || !expect(s, '['))
			return false;
		do
		{
			double		d;

			skip_ws(s);
			if (!scan_number(s, &d) || isnan(d) || isinf(d) || fabs(d) > FLT_MAX)
				return false;
			if (len == cap)
			{
				cap = cap ? cap * 2 : 1024;
				buf = buf ? repalloc(buf, sizeof(float4) * cap) : palloc(sizeof(float4) * cap);
			}
			buf[len++] = (float4) d;
		} while (expect(s, ','));
		if (!expect(s, ']'))
			return false;
		if (*dim == 0)
			*dim = len;
		else if (len != *dim)
			return false;

		arr = (ArrayType *) palloc0(ARR_OVERHEAD_NONULLS(1) + sizeof(float4) * len);
		SET_VARSIZE(arr, ARR_OVERHEAD_NONULLS(1) + sizeof(float4) * len);
		arr->ndim = 1;
		arr->dataoffset = 0;
		arr->elemtype = FLOAT4OID;
		ARR_DIMS(arr)[0] = len;
		ARR_LBOUND(arr)[0] = 1;
		memcpy(ARR_DATA_PTR(arr), buf, sizeof(float4) * len);
		out[count++] = PointerGetDatum(arr);
	} while (expect(s, ','));
	return expect(s, ']') && count == n;
}

/* The reply object; see dc_ollama_fast_embeddings. */
static bool
scan_reply(Scanner *s, int n, int *dim, Datum *out)
{
	bool		seen = false;

	if (!expect(s, '{'))
		return false;
	if (!expect(s, '}'))
	{
		do
		{
			const char *key;
			size_t		klen;
			bool		esc;

			if (!scan_string(s, &key, &klen, &esc) || esc || !expect(s, ':'))
				return false;
			if (klen == 5 && memcmp(key, "error", 5) == 0)
				return false;
			if (klen == 10 && memcmp(key, "embeddings", 10) == 0)
			{
				if (seen || !scan_vectors(s, n, dim, out))
					return false;
				seen = true;
			}
			else if (!skip_value(s, 0))
				return false;
		} while (expect(s, ','));
		if (!expect(s, '}'))
			return false;
	}
	skip_ws(s);
	return seen && s->p == s->end;
}

/*
 * Read an /api/embed reply body (NUL-terminated, len bytes) holding n
 * vectors into out[0..n-1] as real[] Datums.  Returns false, having raised
 * nothing and left *dim as it was, whenever the reply is anything but a
 * well-formed object with exactly one "embeddings" member of the expected
 * shape.
 */
bool
dc_ollama_fast_embeddings(const char *data, size_t len, int n, int *dim, Datum *out)
{
	Scanner		s = {data, data + len};
	int			dim_in = *dim;

	if (data == NULL || scan_reply(&s, n, dim, out))
		return data != NULL;
	*dim = dim_in;
	return false;
}

/*
 * Find the top-level member "key" of a reply object (NUL-terminated, len
 * bytes) and return the span of its raw JSON value (*vstart, *vlen).
 * Returns false, raising nothing, unless the reply is a well-formed object
 * with exactly one such member and no "error" member.  Used for
 * ollama_generate, whose reply also carries a "context" array of token ids
 * that would otherwise be built into a tree only to be thrown away.
 */
bool
dc_ollama_fast_member(const char *data, size_t len, const char *key,
					  const char **vstart, size_t *vlen)
{
	Scanner		s = {data, data + len};
	size_t		keylen = strlen(key);
	bool		seen = false;

	if (data == NULL || !expect(&s, '{'))
		return false;
	if (!expect(&s, '}'))
	{
		do
		{
			const char *k;
			size_t		klen;
			bool		esc;
			const char *v;

			if (!scan_string(&s, &k, &klen, &esc) || esc || !expect(&s, ':'))
				return false;
			if (klen == 5 && memcmp(k, "error", 5) == 0)
				return false;
			skip_ws(&s);
			v = s.p;
			if (!skip_value(&s, 0))
				return false;
			if (klen == keylen && memcmp(k, key, keylen) == 0)
			{
				if (seen)
					return false;
				seen = true;
				*vstart = v;
				*vlen = s.p - v;
			}
		} while (expect(&s, ','));
		if (!expect(&s, '}'))
			return false;
	}
	skip_ws(&s);
	return seen && s.p == s.end;
}
