/*
 * llmc_reader: reads llm.c token shards the way llm.c's training DataLoader does (llmc/dataloader.h, no
 * shuffling), written for mixlab's tests (tests/test_llmc_loader.py); not llm.c's code.
 *
 * usage: llmc_reader PATTERN B T P OUT
 *
 * 1. The files are those matching PATTERN, in glob(3) order (sorted by name), as llm.c's dataloader_init.
 * 2. Every file is validated before any batch is read, with llm.c's checks:
 *    - a header of 256 int32: header[0] magic, header[1] version, header[2] token count ntok;
 *    - magic 20240520 with version 1 (uint16 tokens) or magic 20240801 with version 7 (uint32 tokens);
 *    - ntok > 0 and the file size is exactly 256 * 4 + ntok * token size (no missing or trailing bytes);
 *    - ntok >= P * B * T + 1 (at least one global batch per file).
 * 3. File after file, for sample s in [0, (ntok - 1) / (P * B * T)) and process p in [0, P): read the
 *    B * T + 1 tokens at byte 1024 + (s * P + p) * B * T * size (llm.c's dataloader_load_batch); the inputs
 *    are the first B * T of them and the targets the last B * T. Each window's inputs then its targets are
 *    appended to OUT as little-endian uint32.
 * 4. Prints "files F windows W tokens N" (N: the header counts summed). Any failed check prints one line
 *    naming the file and the check to stderr and exits with status 1; bad arguments exit with status 2.
 */
#define _POSIX_C_SOURCE 200809L
#define _FILE_OFFSET_BITS 64

#include <glob.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>

#define HEADER_INTS 256
#define HEADER_BYTES (HEADER_INTS * 4)

typedef struct {
    int64_t ntok;
    int size; /* bytes per token: 2 or 4 */
} Shard;

static void fail(const char *path, const char *what) {
    fprintf(stderr, "%s: %s\n", path, what);
    exit(1);
}

/* Validate one file (step 2); returns its token count and token size. */
static Shard check_shard(const char *path, int64_t batch_tokens) {
    FILE *f = fopen(path, "rb");
    if (f == NULL) fail(path, "cannot open");
    int32_t header[HEADER_INTS];
    if (fread(header, sizeof(int32_t), HEADER_INTS, f) != HEADER_INTS) fail(path, "short header");
    Shard s = {header[2], 0};
    if (header[0] == 20240520) {
        if (header[1] != 1) fail(path, "bad version for magic 20240520 (expected 1)");
        s.size = 2;
    } else if (header[0] == 20240801) {
        if (header[1] != 7) fail(path, "bad version for magic 20240801 (expected 7)");
        s.size = 4;
    } else {
        fail(path, "bad magic");
    }
    if (s.ntok <= 0) fail(path, "token count must be positive");
    if (fseeko(f, 0, SEEK_END) != 0) fail(path, "cannot seek");
    off_t bytes = ftello(f);
    if (bytes != (off_t)(HEADER_BYTES + s.ntok * s.size)) fail(path, "file size is not header + token count tokens");
    if (s.ntok < batch_tokens + 1) fail(path, "fewer tokens than one batch (P * B * T + 1)");
    fclose(f);
    return s;
}

static void put_u32(uint32_t v, FILE *out) {
    unsigned char b[4] = {(unsigned char)v, (unsigned char)(v >> 8), (unsigned char)(v >> 16), (unsigned char)(v >> 24)};
    if (fwrite(b, 1, 4, out) != 4) {
        fprintf(stderr, "write failed\n");
        exit(1);
    }
}

int main(int argc, char **argv) {
    if (argc != 6) {
        fprintf(stderr, "usage: %s PATTERN B T P OUT\n", argv[0]);
        return 2;
    }
    int64_t B = atoll(argv[2]), T = atoll(argv[3]), P = atoll(argv[4]);
    if (B <= 0 || T <= 0 || P <= 0) {
        fprintf(stderr, "B, T and P must be positive\n");
        return 2;
    }
    glob_t g;
    if (glob(argv[1], 0, NULL, &g) != 0 || g.gl_pathc == 0) {
        fprintf(stderr, "no files match %s\n", argv[1]);
        return 1;
    }
    Shard *shards = malloc(g.gl_pathc * sizeof(Shard));
    int64_t total = 0;
    for (size_t i = 0; i < g.gl_pathc; i++) {
        shards[i] = check_shard(g.gl_pathv[i], P * B * T);
        total += shards[i].ntok;
    }
    FILE *out = fopen(argv[5], "wb");
    if (out == NULL) fail(argv[5], "cannot create");
    unsigned char *buf = malloc((size_t)(B * T + 1) * 4);
    int64_t windows = 0;
    for (size_t i = 0; i < g.gl_pathc; i++) {
        const char *path = g.gl_pathv[i];
        Shard s = shards[i];
        FILE *f = fopen(path, "rb");
        if (f == NULL) fail(path, "cannot open");
        int64_t samples = (s.ntok - 1) / (P * B * T);
        for (int64_t k = 0; k < samples; k++) {
            for (int64_t p = 0; p < P; p++) {
                off_t at = HEADER_BYTES + (off_t)((k * P + p) * B * T) * s.size;
                if (fseeko(f, at, SEEK_SET) != 0) fail(path, "cannot seek");
                if (fread(buf, (size_t)s.size, (size_t)(B * T + 1), f) != (size_t)(B * T + 1)) fail(path, "short read");
                for (int half = 0; half < 2; half++) { /* inputs: tokens [0, B*T); targets: [1, B*T] */
                    for (int64_t t = half; t < B * T + half; t++) {
                        const unsigned char *q = buf + t * s.size;
                        uint32_t v = s.size == 2 ? (uint32_t)q[0] | (uint32_t)q[1] << 8
                                                 : (uint32_t)q[0] | (uint32_t)q[1] << 8 | (uint32_t)q[2] << 16 |
                                                       (uint32_t)q[3] << 24;
                        put_u32(v, out);
                    }
                }
                windows++;
            }
        }
        fclose(f);
    }
    if (fclose(out) != 0) fail(argv[5], "cannot write");
    printf("files %zu windows %lld tokens %lld\n", g.gl_pathc, (long long)windows, (long long)total);
    free(buf);
    free(shards);
    globfree(&g);
    return 0;
}
