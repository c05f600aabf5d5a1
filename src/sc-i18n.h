/* sc-i18n.h — gettext for user-facing strings; log lines and JSON keys stay untranslated. */
#pragma once

#include <glib/gi18n-lib.h>
