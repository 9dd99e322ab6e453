/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* message-ids.h: the journal MESSAGE_IDs of the events an operator alerts on (catalog/guestnetd.catalog). */
#pragma once

#define MESSAGE_ID_GUEST_CONNECTED     "e4f844c566b1484fa9fde787d0c03761"
#define MESSAGE_ID_GUEST_DISCONNECTED  "90599f588e864e6194f5fe522255cc4e"
#define MESSAGE_ID_FILTER_APPLIED      "ae59c3faf6a0452a9adf00ecaaf8c50b"
#define MESSAGE_ID_HOST_SYNC_FAILED    "1a0549afa7454f86938b6b27db981243"
#define MESSAGE_ID_REVERT_DONE         "185ff66119324d048d7f09b8103f510a"
#define MESSAGE_ID_MONITOR_MISBEHAVING "58744a5dc7284727bf648389ed01f081"
