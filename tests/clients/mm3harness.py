"""Helpers that run inside GNU Mailman 3 for test-mailman3.sh, called as
`mailman -C CFG withlist -r mm3harness.FUNC -l LIST ARGS...` (the module is
copied next to the private instance; PYTHONPATH points there).
Taken from ../shared/tools/mailman3-harness.sh."""
import time

from mailman.app.inject import inject_text
from mailman.interfaces.action import Action
from mailman.interfaces.mailinglist import Personalization


def configure(mlist, personalize='none'):
    # Posts from anyone go straight through: no member or non-member moderation.
    mlist.default_member_action = Action.accept
    mlist.default_nonmember_action = Action.accept
    # No mail besides the posts themselves: no welcome/goodbye, no owner notices.
    mlist.send_welcome_message = False
    mlist.send_goodbye_message = False
    mlist.admin_immed_notify = False
    mlist.admin_notify_mchanges = False
    mlist.personalize = Personalization[personalize]
    print('configured', mlist.fqdn_listname, 'personalize=%s' % mlist.personalize.name)


def inject_many(mlist, template, tag, first, count):
    """inject_text() -- what `mailman inject` does -- COUNT times, into the 'in' queue."""
    with open(template, encoding='ascii') as fp:
        text = fp.read()
    first, count = int(first), int(count)
    t0 = time.time()
    for seq in range(first, first + count):
        inject_text(mlist, text.replace('@TAG@', tag).replace('@SEQ@', str(seq)))
    print('inject_t0=%.6f inject_t1=%.6f' % (t0, time.time()))
