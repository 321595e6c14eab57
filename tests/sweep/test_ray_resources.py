"""How the Ray engine sizes its actors, with a stand-in for ``ray`` (no Ray, no GPU needed).

The GPU path cannot run on this CPU-only machine; these tests check that it is coherent:
one GPU (and one CPU) per actor when the cluster has GPUs, the model put on ``cuda`` unless
the job names a device, and the job's dtype handed to the workers.
"""

from __future__ import annotations

import pytest

from selfie_tl.sweep import SweepJob, ray_engine


class FakeRay:
    def __init__(self, resources, nodes):
        self.resources, self._nodes = resources, nodes
        self.created, self.killed = [], []

    def is_initialized(self):
        return True

    def cluster_resources(self):
        return self.resources

    def nodes(self):
        return self._nodes

    def remote(self, cls):
        fake = self

        class Handle:
            def __init__(self, options):
                self.options_ = options

            def options(self, **options):
                return Handle(options)

            def remote(self, *args):
                actor = FakeActor(self.options_, args)
                fake.created.append(actor)
                return actor

        return Handle({})

    def kill(self, actor):
        self.killed.append(actor)


class FakeActor:
    def __init__(self, options, args):
        self.options, self.args = options, args
        self.setup = type("M", (), {"remote": staticmethod(lambda: "setup-ref")})()


def _node(cpus, gpus=0):
    resources = {"CPU": cpus} | ({"GPU": gpus} if gpus else {})
    return {"Alive": True, "Resources": resources}


@pytest.fixture
def job(tmp_path):
    return SweepJob(output=str(tmp_path / "o"), model="default", vectors=None, prompts=None, dtype="bfloat16")


def test_cpu_actors_get_cores_over_workers(monkeypatch):
    fake = FakeRay({"CPU": 16.0}, [_node(16)])
    assert ray_engine.actor_resources(fake, 4) == ({"num_cpus": 4}, 4, False)
    assert ray_engine.actor_resources(fake, 32) == ({"num_cpus": 1}, 1, False)
    two_nodes = FakeRay({"CPU": 12.0}, [_node(8), _node(4)])  # never more than the smallest node
    assert ray_engine.actor_resources(two_nodes, 1) == ({"num_cpus": 4}, 4, False)


def test_gpu_cluster_one_gpu_per_actor_model_on_cuda(monkeypatch, job):
    fake = FakeRay({"CPU": 32.0, "GPU": 4.0}, [_node(32, 4)])
    monkeypatch.setattr(ray_engine, "_import_ray", lambda: fake)
    pool = ray_engine.RayPool(job, workers=4)
    assert len(fake.created) == 4 and pool.use_gpu
    for actor in fake.created:
        assert actor.options["num_gpus"] == 1 and actor.options["num_cpus"] == 1
        spec, device, threads = actor.args
        assert device == "cuda" and threads is None and spec["dtype"] == "bfloat16"
    pool.close()
    assert len(fake.killed) == 4


def test_job_device_wins_over_cuda(monkeypatch, job):
    fake = FakeRay({"CPU": 8.0, "GPU": 2.0}, [_node(8, 2)])
    monkeypatch.setattr(ray_engine, "_import_ray", lambda: fake)
    job.device = "cuda:0"
    ray_engine.RayPool(job, workers=2).close()
    assert {actor.args[1] for actor in fake.created} == {"cuda:0"}
