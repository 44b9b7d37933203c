/*
 * curl_generate.c
 *		Baseline for the per-call overhead benchmark: the same
 *		POST /api/generate request datacore sends, N times over one
 *		keep-alive libcurl handle, each call timed on its own.
 *
 * Usage: curl_generate URL N
 * Prints one latency per line, in microseconds.  Built by run.sh; not part
 * of the extension.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <curl/curl.h>

static size_t
discard(char *ptr, size_t size, size_t nmemb, void *arg)
{
	size_t	   *total = arg;

	*total += size * nmemb;
	return size * nmemb;
}

static double
now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

int
main(int argc, char **argv)
{
	const char *body = "{\"model\":\"llama3.2\",\"prompt\":\"hi\",\"stream\":false}";
	struct curl_slist *headers = NULL;
	CURL	   *curl;
	char		url[512];
	int			n,
				i;

	if (argc != 3)
	{
		fprintf(stderr, "usage: %s BASE_URL N\n", argv[0]);
		return 2;
	}
	snprintf(url, sizeof(url), "%s/api/generate", argv[1]);
	n = atoi(argv[2]);

	curl_global_init(CURL_GLOBAL_ALL);
	curl = curl_easy_init();
	headers = curl_slist_append(headers, "Content-Type: application/json");
	headers = curl_slist_append(headers, "Expect:");
	curl_easy_setopt(curl, CURLOPT_URL, url);
	curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
	curl_easy_setopt(curl, CURLOPT_POSTFIELDS, body);
	curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE, (long) strlen(body));
	curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, discard);

	for (i = 0; i < n; i++)
	{
		size_t		total = 0;
		long		status = 0;
		double		t0;
		CURLcode	rc;

		curl_easy_setopt(curl, CURLOPT_WRITEDATA, &total);
		t0 = now_us();
		rc = curl_easy_perform(curl);
		curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
		if (rc != CURLE_OK || status != 200 || total == 0)
		{
			fprintf(stderr, "request %d failed: %s, status %ld\n", i, curl_easy_strerror(rc), status);
			return 1;
		}
		printf("%.1f\n", now_us() - t0);
	}
	curl_slist_free_all(headers);
	curl_easy_cleanup(curl);
	curl_global_cleanup();
	return 0;
}
