"""Demo catalogue of public services, fee versions and waiver rules (CASHLESS_DEMO=1 only).

The amounts and the legal-basis texts are DEMO DATA, modelled on the kinds of fees Hanoi
charges; no resolution or circular number is cited on purpose. Idempotent: a service, fee
history or rule that exists is left as it is.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from payments.fees.models import FeeVersion, PublicService, WaiverRule
from payments.fees.rules import FULL_WAIVER_BP, Channel, Scope

ACTOR = "demo"
FEES_FROM = date(2023, 1, 1)
DEMO_FROM = date(2024, 1, 1)
COMMUNE_VI = "Ủy ban nhân dân cấp xã (phường, xã)"
COMMUNE_EN = "Commune-level People's Committee (ward or commune)"
# (code, name_vi, name_en, authority_vi, authority_en, council, counter, online, fee basis)
SERVICES = [
    (
        "judicial-record-certificate",
        "Cấp Phiếu lý lịch tư pháp",
        "Judicial record certificate",
        "Sở Tư pháp thành phố Hà Nội",
        "Hanoi Department of Justice",
        False,
        200_000,
        200_000,
        "Thông tư của Bộ Tài chính quy định mức thu phí cung cấp thông tin lý lịch tư pháp "
        "(dữ liệu minh hoạ)",
    ),
    (
        "household-business-registration",
        "Đăng ký thành lập hộ kinh doanh",
        "Household business registration",
        COMMUNE_VI,
        COMMUNE_EN,
        True,
        100_000,
        100_000,
        "Nghị quyết của HĐND thành phố Hà Nội quy định mức thu lệ phí đăng ký hộ kinh doanh "
        "(dữ liệu minh hoạ)",
    ),
    (
        "construction-permit",
        "Cấp giấy phép xây dựng nhà ở riêng lẻ",
        "Construction permit for a detached house",
        COMMUNE_VI,
        COMMUNE_EN,
        True,
        75_000,
        75_000,
        "Nghị quyết của HĐND thành phố Hà Nội quy định mức thu lệ phí cấp giấy phép xây dựng "
        "(dữ liệu minh hoạ)",
    ),
    (
        "civil-status-extract-copy",
        "Cấp bản sao trích lục hộ tịch",
        "Copy of a civil status extract",
        COMMUNE_VI,
        COMMUNE_EN,
        True,
        8_000,
        8_000,
        "Nghị quyết của HĐND thành phố Hà Nội quy định mức thu lệ phí hộ tịch (dữ liệu minh hoạ)",
    ),
    (
        "copy-certification",
        "Chứng thực bản sao từ bản chính",
        "Certified copy from the original",
        COMMUNE_VI,
        COMMUNE_EN,
        False,
        2_000,
        2_000,
        "Thông tư của Bộ Tài chính quy định mức thu phí chứng thực (dữ liệu minh hoạ)",
    ),
]
# (reason code, scope, service code, channel, category, basis points, from, to, legal basis)
RULES: list[tuple[Any, ...]] = [
    (
        "online_council_procedures",
        Scope.COUNCIL_PROCEDURES,
        None,
        Channel.ONLINE,
        None,
        FULL_WAIVER_BP,
        DEMO_FROM,
        date(2025, 12, 31),
        "Nghị quyết của HĐND thành phố Hà Nội về miễn phí, lệ phí khi nộp hồ sơ trực tuyến "
        "đối với thủ tục thuộc thẩm quyền của HĐND thành phố (dữ liệu minh hoạ)",
    ),
    (
        "online_all_services",
        Scope.ALL_SERVICES,
        None,
        Channel.ONLINE,
        None,
        FULL_WAIVER_BP,
        date(2026, 1, 1),
        None,
        "Nghị quyết của HĐND thành phố Hà Nội về miễn 100% phí, lệ phí khi nộp hồ sơ trực tuyến "
        "từ ngày 01/01/2026 (dữ liệu minh hoạ)",
    ),
    (
        "beneficiary_student",
        Scope.SERVICE,
        "judicial-record-certificate",
        None,
        "student",
        5_000,
        DEMO_FROM,
        None,
        "Quy định giảm 50% phí cung cấp thông tin lý lịch tư pháp cho sinh viên (dữ liệu minh hoạ)",
    ),
    (
        "beneficiary_poor_household",
        Scope.ALL_SERVICES,
        None,
        None,
        "poor_household",
        FULL_WAIVER_BP,
        DEMO_FROM,
        None,
        "Quy định miễn phí, lệ phí cho thành viên hộ nghèo (dữ liệu minh hoạ)",
    ),
]


def _seed_service(session: Session, row: tuple[Any, ...]) -> PublicService:
    code, name_vi, name_en, auth_vi, auth_en, council, counter, online, basis = row
    service = session.scalars(select(PublicService).where(PublicService.code == code)).first()
    if service is None:
        service = PublicService(
            code=code,
            name_vi=name_vi,
            name_en=name_en,
            authority_vi=auth_vi,
            authority_en=auth_en,
            council_procedure=council,
            created_by=ACTOR,
        )
        session.add(service)
        session.flush()
    if session.scalar(select(FeeVersion.id).where(FeeVersion.service_id == service.id)) is None:
        session.add(
            FeeVersion(
                service_id=service.id,
                counter_fee=counter,
                online_fee=online,
                effective_from=FEES_FROM,
                legal_basis=basis,
                created_by=ACTOR,
            )
        )
    return service


def seed_public_services(session: Session, svc: Any, ids: dict[str, int]) -> None:
    """The demo catalogue and its waiver rules (a DomainSeeder; idempotent)."""
    by_code = {row[0]: _seed_service(session, row) for row in SERVICES}
    for reason, scope, code, channel, category, bp, start, end, basis in RULES:
        if session.scalar(select(WaiverRule.id).where(WaiverRule.reason_code == reason)):
            continue
        session.add(
            WaiverRule(
                scope=scope,
                service_id=by_code[code].id if code else None,
                channel=channel,
                beneficiary_category=category,
                basis_points=bp,
                reason_code=reason,
                legal_basis=basis,
                effective_from=start,
                effective_to=end,
                created_by=ACTOR,
            )
        )
    session.flush()
