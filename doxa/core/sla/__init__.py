"""Service levels: business-hours calendars, policies with targets, and the clocks on tickets."""
