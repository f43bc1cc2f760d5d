"""The benchmark's peer: DuckDB, on one thread, doing the export's work on the very lake files the bench wrote.

    python duckdb_peer.py LAKE_DIR START END FORMAT OUT   (FORMAT: parquet-zstd or jsonl-gzip)

Reads every NDJSON + zstd object under LAKE_DIR with the seed's column types, keeps team 1's rows landed in
[START, END), drops repeated uuids exactly (the first occurrence, as the engine keeps it), and writes them as one
Parquet + zstd or JSONLines + gzip file at OUT (which repeat is kept is DuckDB's choice: the cost is the same). Prints `records seconds` (the COPY alone: DuckDB's start-up is not
counted). Run by `cargo bench --bench export -- --peer` under the bench's core (`taskset`), with
`SET threads = 1`.
"""
import sys
import time

import duckdb

lake, start, end, fmt, out = sys.argv[1:6]
columns = ("{'team_id': 'BIGINT', 'uuid': 'VARCHAR', 'event': 'VARCHAR', 'distinct_id': 'VARCHAR', "
           "'person_id': 'VARCHAR', 'properties': 'JSON', 'person_properties': 'JSON', 'elements_chain': 'VARCHAR', "
           "'timestamp': 'TIMESTAMPTZ', 'created_at': 'TIMESTAMPTZ', '_inserted_at': 'TIMESTAMPTZ'}")
target = {"parquet-zstd": "(FORMAT parquet, COMPRESSION zstd)", "jsonl-gzip": "(FORMAT json, COMPRESSION gzip)"}[fmt]
con = duckdb.connect()
con.execute("SET threads = 1")
con.execute("SET TimeZone = 'UTC'")
query = f"""
COPY (
  SELECT uuid, event, distinct_id, person_id, properties, person_properties, elements_chain, timestamp, created_at,
         _inserted_at
  FROM read_ndjson('{lake}/**/*.jsonl.zst', compression = 'zstd', columns = {columns})
  WHERE team_id = 1 AND _inserted_at >= TIMESTAMPTZ '{start}' AND _inserted_at < TIMESTAMPTZ '{end}'
  QUALIFY row_number() OVER (PARTITION BY uuid) = 1
) TO '{out}' {target}
"""
started = time.perf_counter()
records = con.execute(query).fetchone()[0]
print(records, time.perf_counter() - started)
