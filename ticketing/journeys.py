"""Revenue protection: is a pair of sightings of one ticket an impossible journey?

A pure rule module. A sighting is an accepted tap (online, or accepted offline by a gate) with
where and when it happened. Two sightings of the same ticket at different validators are
impossible when the rider would have had to travel faster than any Hanoi bus or metro train:
the QR was shared (a screenshot relayed within its 2-minute life) or a pass was lent while still
in use. Sightings closer than `MIN_DISTANCE_KM` are never flagged: neighbouring stops, platforms
of one station and GPS noise must not revoke an honest rider's ticket.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

EARTH_RADIUS_KM = 6371.0088
MAX_SPEED_KMH = 80.0  # above a metro train's top running speed, far above any bus in Hanoi
MIN_DISTANCE_KM = 1.0
WINDOW_SECONDS = 3 * 3600  # sightings further apart in time can never be impossible here


@dataclass(frozen=True, slots=True)
class Sighting:
    tap_id: int
    validator_id: str
    at: int  # Unix seconds
    lat: float | None
    lon: float | None

    @property
    def located(self) -> bool:
        return self.lat is not None and self.lon is not None


def distance_km(a: Sighting, b: Sighting) -> float:
    """Great-circle (haversine) distance between two located sightings."""
    assert a.lat is not None and a.lon is not None and b.lat is not None and b.lon is not None
    phi1, phi2 = math.radians(a.lat), math.radians(b.lat)
    dphi, dlam = phi2 - phi1, math.radians(b.lon - a.lon)
    h = math.sin(dphi / 2) ** 2 + math.cos(phi1) * math.cos(phi2) * math.sin(dlam / 2) ** 2
    return 2 * EARTH_RADIUS_KM * math.asin(min(1.0, math.sqrt(h)))


def impossible_journey(
    a: Sighting,
    b: Sighting,
    *,
    max_speed_kmh: float = MAX_SPEED_KMH,
    min_distance_km: float = MIN_DISTANCE_KM,
) -> dict[str, Any] | None:
    """The evidence (distance, seconds, implied speed) if a → b is impossible, else None."""
    if a.validator_id == b.validator_id or not (a.located and b.located):
        return None
    seconds = abs(b.at - a.at)
    if seconds > WINDOW_SECONDS:
        return None
    km = distance_km(a, b)
    if km < min_distance_km:
        return None
    # Taps in the same second count as one second apart: the speed is then simply enormous.
    speed = km / max(seconds, 1) * 3600
    if speed <= max_speed_kmh:
        return None
    return {
        "distance_km": round(km, 3),
        "seconds": seconds,
        "speed_kmh": round(speed, 1),
        "validators": [a.validator_id, b.validator_id],
        "taps": [a.tap_id, b.tap_id],
    }


def first_impossible(new: Sighting, earlier: list[Sighting]) -> dict[str, Any] | None:
    """The first earlier sighting that makes `new` impossible, as evidence, or None."""
    for other in earlier:
        evidence = impossible_journey(other, new)
        if evidence is not None:
            return evidence
    return None
