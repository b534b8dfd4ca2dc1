"""Teams: who works a ticket, the support address a team owns, and how it assigns."""
