//! Throughput of the statement splitter, and of splitting plus pg_query
//! analysis, on a large generated patch (criterion reports bytes/s).

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};

/// About `target` bytes of varied SQL: DDL, DML, dollar-quoted bodies,
/// comments and string literals with semicolons in them.
fn generated_patch(target: usize) -> String {
    let mut out = String::with_capacity(target + 1024);
    let mut i = 0usize;
    while out.len() < target {
        out.push_str(&format!(
            "-- step {i}: comment with a ; inside\n\
             create table t{i} (id bigint primary key, note text default 'a;b', v int);\n\
             alter table t{i} add column c{i} int not null default 0;\n\
             create index concurrently t{i}_v on t{i} (v);\n\
             alter table t{i} add constraint t{i}_chk check (v > 0) not valid;\n\
             update t{i} set v = v + 1 where id = {i};\n\
             create function f{i}() returns int language plpgsql as $body$\n\
             begin\n  return {i}; /* nested /* comment */ ; */\nend;\n$body$;\n\
             insert into t{i} (id, note) values ({i}, E'it\\'s; fine');\n"
        ));
        i += 1;
    }
    out
}

fn bench(c: &mut Criterion) {
    let sql = generated_patch(1 << 20);
    let mut group = c.benchmark_group("patch");
    group.throughput(Throughput::Bytes(sql.len() as u64));
    group.sample_size(20);
    group.bench_function("split", |b| {
        b.iter(|| downtime::patch::split::split(black_box(&sql)).map(|s| s.statements.len()))
    });
    group.bench_function("split+analyse", |b| {
        b.iter(|| {
            let split = downtime::patch::split::split(black_box(&sql)).expect("valid SQL");
            split
                .statements
                .iter()
                .map(|s| downtime::patch::analyse(s.text).facts.len())
                .sum::<usize>()
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
