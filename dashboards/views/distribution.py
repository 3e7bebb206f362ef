"""Distribution: orders and their state; PIs approve, technicians ship and receive; drafting for both."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from biobank.config import get_settings
from biobank.domain.storage.kinds import TEMPERATURE_LABEL, TemperatureClass
from biobank.domain.storage.orders import DistributionUse, OrderStatus
from biobank.services import distribution
from biobank.services.auth import Action, can
from dashboards.data import core as data
from dashboards.data import specimens as data_specimens
from dashboards.data import storage as data_storage
from dashboards.shell import links
from dashboards.shell.actions import labelled, run_write, show_flash
from dashboards.shell.session import current_user

FLASH = "distribution_flash"
PICK = "distribution_pick"  # the order to show on the next run (a draft just created)
zone = get_settings().zone
zone_name = get_settings().timezone


def local(value: object) -> str:
    """A stored UTC time in the lab's zone (empty when not set)."""
    if value is None or pd.isna(value):
        return ""
    return pd.Timestamp(value).tz_convert(zone).strftime("%d %b %Y %H:%M")

#: The states the metrics count, in the order an order goes through them.
SHOWN_STATUSES = (OrderStatus.draft, OrderStatus.approved, OrderStatus.shipped, OrderStatus.received)
#: Shipping temperatures offered (a named class, not "Other"); -60 to -85 °C (dry ice) is preselected.
SHIPPING = [t.value for t in TemperatureClass if t is not TemperatureClass.other]

st.title("Distribution")
url = data.url()
with data.read_session() as session:
    user = current_user(session)
    may_approve = can(user, Action.approve)
    may_ship = can(user, Action.ship)
    may_draft = can(user, Action.enter) or can(user, Action.plan)

show_flash(FLASH)

orders = data_storage.orders(url)
if orders.empty:
    st.info("No distribution orders yet.")
else:
    counts = orders["status"].value_counts()
    cols = st.columns(4)
    for col, status in zip(cols, SHOWN_STATUSES, strict=True):
        col.metric(status.value.capitalize(), int(counts.get(status.value, 0)))
    shown = orders[["code", "study", "recipient", "use", "status", "items", "approved_by", "shipped_at", "received_at"]].copy()
    for column in ("shipped_at", "received_at"):
        shown[column] = shown[column].map(local)  # the lab's clock, not raw UTC
    st.dataframe(shown.rename(columns={"shipped_at": f"shipped ({zone_name})", "received_at": f"received ({zone_name})"}),
                 hide_index=True, width="stretch", key="distribution_orders")
    codes = list(orders["code"])
    chosen = st.session_state.pop(PICK, None) or links.wanted("order")  # a new draft, or the order the link names
    if chosen in codes:
        st.session_state["distribution_order"] = chosen
    code = st.selectbox("Order", codes, key="distribution_order")
    links.remember("order", code)
    if code:
        detail = data_storage.order(url, code)
        st.markdown(f"**{detail['code']}** · {detail['study']} → {detail['recipient']} · use *{detail['use']}* "
                    f"(consent needed: {', '.join(detail['consent_needed'])}) · status **{detail['status']}**")
        if detail["purpose"]:
            st.caption(detail["purpose"])
        st.dataframe(pd.DataFrame(detail["items"]), hide_index=True, width="stretch", key="distribution_items")
        if detail["items"]:
            p1, p2, _ = st.columns([1, 1, 3])
            p1.download_button("Pick list (PDF)", lambda: data_specimens.order_pick_list_pdf(url, code), f"pick-{code}.pdf",
                               "application/pdf", key="distribution_pick_list", on_click="ignore")
            p2.download_button("Shipment manifest (PDF)", lambda: data_specimens.order_manifest_pdf(url, code),
                               f"manifest-{code}.pdf", "application/pdf", key="distribution_manifest", on_click="ignore")
        status = detail["status"]
        if status == OrderStatus.draft and may_approve and st.button("Approve", key="distribution_approve"):
            run_write(lambda s, u: distribution.approve(s, actor=u, order_code=code),
                      flash=FLASH, success=f"{code} approved", error=labelled("approve"))
        if status == OrderStatus.approved and may_ship:
            with st.form("distribution_ship_form"):
                temperature = st.selectbox("Shipping temperature", SHIPPING, index=SHIPPING.index(TemperatureClass.minus80),
                                           format_func=lambda t: f"{t} ({TEMPERATURE_LABEL[TemperatureClass(t)]})",
                                           key="distribution_ship_temperature")
                tracking = st.text_input("Courier and tracking", key="distribution_ship_tracking")
                if st.form_submit_button("Ship"):
                    run_write(lambda s, u: distribution.ship(s, actor=u, order_code=code, shipping_temperature=temperature,
                                                             tracking_ref=tracking or None),
                              flash=FLASH, success=f"{code} shipped", error=labelled("ship"))
        if status == OrderStatus.shipped and may_ship and st.button("Mark received", key="distribution_receive"):
            run_write(lambda s, u: distribution.receive(s, actor=u, order_code=code),
                      flash=FLASH, success=f"{code} received", error=labelled("receive"))
        if status == OrderStatus.draft and may_draft:
            with st.form("distribution_add_form"):
                specimen = st.text_input("Add specimen (code)", key="distribution_add_code")
                quantity = st.number_input("Quantity (0: all that remains)", value=0.0, key="distribution_add_qty")
                if st.form_submit_button("Add item"):
                    run_write(lambda s, u: distribution.add_item(s, actor=u, order_code=code, specimen_code=specimen.strip(),
                                                                 quantity=quantity or None),
                              flash=FLASH, success=f"{specimen} added", error=labelled("add item"))

if may_draft:
    st.divider()
    with st.form("distribution_create_form"):
        st.subheader("New order")
        study = st.text_input("Study", key="distribution_new_study")
        recipient = st.text_input("Recipient (person, institution)", key="distribution_new_recipient")
        use = st.selectbox("Use", [u.value for u in DistributionUse], key="distribution_new_use")
        purpose = st.text_area("Purpose", key="distribution_new_purpose")
        if st.form_submit_button("Create draft"):
            run_write(lambda s, u: distribution.create_order(
                s, actor=u, study=study, recipient=recipient, use=use, purpose=purpose).code,
                flash=FLASH, success=lambda order: f"order {order} drafted", error=labelled("create"),
                on_success=lambda order: st.session_state.__setitem__(PICK, order))  # the new draft is the one shown
