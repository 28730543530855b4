"""Secure aggregation (SecAgg+) for the shared adapter, with distributed DP noise and its own accountant.

With SecAgg+ the server only ever sees the sum of the clients' masked updates, so it cannot add the DP noise
itself: each client clips its update to C and adds Gaussian noise of std z·C/√m (m clients per round), so the
sum carries std z·C·√(k/m) when k of them report — the central Gaussian mechanism with multiplier z·√(k/m) on a
sum whose sensitivity is C. That multiplier is what the standalone RDP accountant composes each round.

Clients send the clipped, noised *update* (new − global, centred on 0, so SecAgg+'s fixed-point quantization
stays precise) with weight 1; the server adds the mean update to the global adapter. A client that drops after
the key exchange is recovered by the protocol (its masks are rebuilt from the survivors' shares) and the round
goes on. Flower implements SecAgg+ on its legacy API: a LegacyContext, a legacy FedAvg that only averages the
already-unmasked vector, and `SecAggPlusWorkflow`; this module drives one round of it at a time from our loop.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from dataclasses import dataclass, field

import numpy as np
from flwr.app import Array, ArrayRecord, ConfigRecord, Context
from flwr.serverapp import Grid

# Each client's update enters SecAgg+'s fixed-point range [-CLIPPING_RANGE, CLIPPING_RANGE] (2**22 steps):
# clipped updates plus noise of std z·C/√m stay far inside it.
CLIPPING_RANGE = 8.0
# Every client weighs 1 (uniform FedAvg, as the accountant assumes); max_weight 1 keeps full quantization precision.
MAX_WEIGHT = 1.0


def effective_noise(noise: float, sampled: int, reported: int) -> float:
    """The noise multiplier of the aggregate when `reported` of `sampled` clients' noise shares arrived."""
    return noise * math.sqrt(reported / sampled) if sampled else 0.0


def client_noise_std(noise: float, clip: float, sampled: int) -> float:
    """Each client's share of the Gaussian noise: the sum over all `sampled` clients has std noise·clip."""
    return noise * clip / math.sqrt(sampled) if sampled else 0.0


@dataclass
class SecAggRound:
    replied: int
    metrics: list[dict] = field(default_factory=list)
    mean_update: list | None = None  # None when the round could not be unmasked


class SecAggPlus:
    """Runs SecAgg+ rounds over whichever nodes the grid has (a dead node is dropped from later rounds)."""

    def __init__(self, context: Context, clients_per_round: int, min_clients: int, timeout: float,
                 num_shares: float = 1.0, threshold: float = 0.66):
        from flwr.server.client_manager import SimpleClientManager

        self.context = context
        self.n = clients_per_round
        self.least = min_clients
        self.timeout = timeout
        self.num_shares = num_shares
        self.threshold = threshold
        self.manager = SimpleClientManager()
        self._thread = None

    def __enter__(self) -> SecAggPlus:
        return self

    def __exit__(self, *exc) -> None:
        if self._thread is not None:
            thread, stop, _ = self._thread
            stop.set()
            thread.join(timeout=30)

    def _track_nodes(self, grid: Grid) -> None:
        if self._thread is None:
            from flwr.server.compat.app_utils import start_update_client_manager_thread

            self._thread = start_update_client_manager_thread(grid, self.manager)
            self._thread[2].wait(timeout=self.timeout)

    def train_round(self, grid: Grid, rnd: int, global_arrays: ArrayRecord, config: dict) -> SecAggRound:
        from flwr.server import ServerConfig
        from flwr.server.compat.legacy_context import LegacyContext
        from flwr.server.strategy import FedAvg
        from flwr.server.workflow import SecAggPlusWorkflow
        from flwr.server.workflow.constant import MAIN_CONFIGS_RECORD, MAIN_PARAMS_RECORD, Key

        self._track_nodes(grid)
        captured: list[dict] = []

        def keep_metrics(results: list[tuple[int, dict]]) -> dict:
            captured.extend(m for _, m in results)
            return {}

        strategy = FedAvg(fraction_fit=1.0, fraction_evaluate=0.0, min_fit_clients=self.least,
                          min_evaluate_clients=self.least, min_available_clients=self.least,
                          on_fit_config_fn=lambda _: dict(config), fit_metrics_aggregation_fn=keep_metrics)
        legacy = LegacyContext(self.context, ServerConfig(num_rounds=rnd), strategy, self.manager)
        legacy.state.config_records[MAIN_CONFIGS_RECORD] = ConfigRecord({Key.CURRENT_ROUND: rnd})
        names = list(global_arrays.keys())
        # the clients train from the global adapter; what comes back (summed, unmasked, averaged) is an update
        legacy.state.array_records[MAIN_PARAMS_RECORD] = ArrayRecord(
            OrderedDict((str(i), Array(np.asarray(a))) for i, a in enumerate(global_arrays.to_numpy_ndarrays())))
        sent = legacy.state.array_records[MAIN_PARAMS_RECORD]
        SecAggPlusWorkflow(num_shares=self.num_shares, reconstruction_threshold=self.threshold,
                           max_weight=MAX_WEIGHT, clipping_range=CLIPPING_RANGE, timeout=self.timeout)(grid, legacy)
        record = legacy.state.array_records.pop(MAIN_PARAMS_RECORD)
        unmasked = record is not sent  # the workflow stores a new record only when it could unmask the sum
        if not unmasked:
            return SecAggRound(len(captured), captured, None)
        update = [np.asarray(a, dtype=np.float32) for a in record.to_numpy_ndarrays()]
        if len(update) != len(names):
            raise ValueError(f"secure aggregation returned {len(update)} arrays for {len(names)} parameters")
        return SecAggRound(len(captured), captured, update)


def apply_update(global_arrays: ArrayRecord, update: list) -> ArrayRecord:
    return ArrayRecord(OrderedDict((k, Array((np.asarray(a) + u).astype(np.float32))) for (k, a), u in
                                   zip(zip(global_arrays.keys(), global_arrays.to_numpy_ndarrays(), strict=True),
                                       update, strict=True)))
