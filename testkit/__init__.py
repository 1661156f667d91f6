"""What the tests (tests/) and the benchmarks (bench/) share, installed with the project (`pip install -e .`):

- `testkit.repo`: the checkout (`ROOT`), a clean copy of it as a fresh git repo, setting params in a copy;
- `testkit.processes`: free ports, waiting for a condition or a process, running a command, a private Redis;
- `testkit.pg`: a private, throwaway PostgreSQL cluster reached through pyodbc + psqlODBC;
- `testkit.service`: the real service (tiny trained models, Redis, a Celery worker, the API) and the API alone;
- `testkit.load`: HTTP load on `/predict` and its latency percentiles;
- `testkit.machine`: the CPU's name, batch-1 latency, throughput and matmul peak of a model call.

It works from a checkout (an editable install): `ROOT` is the folder above this package."""
