/* Driver for the SQLite benchmark module (benches/build.sh): runs a few statements on an
 * in-memory database, touching the parser, the VDBE, B-trees, FTS5, JSON and R*Tree, and prints
 * the results, so the module is a real, working program and not just a library. */
#include <stdio.h>
#include "sqlite3.h"

static int print_row(void *unused, int ncols, char **values, char **names) {
    (void)unused;
    for (int i = 0; i < ncols; i++)
        printf("%s%s=%s", i ? " " : "", names[i], values[i] ? values[i] : "NULL");
    printf("\n");
    return 0;
}

static const char *const SQL =
    "CREATE TABLE t(id INTEGER PRIMARY KEY, name TEXT, score REAL);"
    "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 2000)"
    "  INSERT INTO t(name, score) SELECT 'item' || i, (i * 37 % 1000) / 10.0 FROM n;"
    "CREATE INDEX t_score ON t(score);"
    "SELECT count(*) AS rows, round(avg(score), 3) AS mean, max(name) AS last FROM t;"
    "SELECT name, score FROM t WHERE score > 99.5 ORDER BY score DESC, id LIMIT 3;"
    "CREATE VIRTUAL TABLE docs USING fts5(body);"
    "INSERT INTO docs VALUES ('streaming tiered webassembly engine'), ('baseline compiler'),"
    "  ('optimizing tier compiles hot functions');"
    "SELECT rowid, body FROM docs WHERE docs MATCH 'compil*' ORDER BY rank;"
    "SELECT json_extract('{\"a\": [1, 2, {\"b\": 42}]}', '$.a[2].b') AS json_b;"
    "CREATE VIRTUAL TABLE boxes USING rtree(id, x0, x1, y0, y1);"
    "INSERT INTO boxes VALUES (1, 0, 10, 0, 10), (2, 5, 15, 5, 15), (3, 20, 30, 20, 30);"
    "SELECT count(*) AS overlapping FROM boxes WHERE x1 >= 8 AND x0 <= 12;";

int main(void) {
    sqlite3 *db;
    char *err = NULL;
    if (sqlite3_open(":memory:", &db) != SQLITE_OK) {
        fprintf(stderr, "open: %s\n", sqlite3_errmsg(db));
        return 1;
    }
    printf("sqlite %s\n", sqlite3_libversion());
    if (sqlite3_exec(db, SQL, print_row, NULL, &err) != SQLITE_OK) {
        fprintf(stderr, "error: %s\n", err);
        sqlite3_free(err);
        sqlite3_close(db);
        return 1;
    }
    sqlite3_close(db);
    return 0;
}
